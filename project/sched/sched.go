// Package sched is the project's scheduler: a deterministic state machine
// that a virtual peer replicates (DESIGN §3, §5, §8).
//
// Entries are workunits.Command values decoded from the log, plus ticks that
// carry the time. Apply turns each into a reply and a new state, reading no
// clock, no file and no network, so every member of the virtual peer that
// applies the same log reaches the same state and gives the same replies.
package sched

import (
	"encoding/json"
	"fmt"
	"io"
	"math"
	"sort"
	"strconv"
	"time"

	"github.com/momonga-project/momonga/vpeer"
	wu "github.com/momonga-project/momonga/workunits"
)

// Config holds the scheduler's policy. It is the same on every member.
type Config struct {
	Project      string
	Lease        time.Duration // a task with no beat for this long goes back to unsent
	Beat         time.Duration // how often hosts are asked to beat while computing
	Retry        time.Duration // how long a host waits after an empty work reply
	SessionTTL   time.Duration // an unused de-duplication session is forgotten after this
	ReplyWindow  int           // how many replies per requester are kept for retries
	HostFLOPS    float64       // assumed speed of a host that reports none
	DeadlineSecs float64       // default time from assignment to report
}

// DefaultConfig is the policy of a project that sets nothing.
func DefaultConfig() Config {
	return Config{
		Project:      "momonga",
		Lease:        30 * time.Second,
		Beat:         10 * time.Second,
		Retry:        5 * time.Second,
		SessionTTL:   24 * time.Hour,
		ReplyWindow:  8,
		HostFLOPS:    1e9,
		DeadlineSecs: 7 * 24 * 3600,
	}
}

// Machine is the scheduler state machine. It implements vpeer.StateMachine.
// It is not safe for concurrent use: the vpeer member serialises Apply and
// queries.
type Machine struct {
	cfg Config
	st  *state
}

var _ vpeer.StateMachine = (*Machine)(nil)

// New returns an empty scheduler.
func New(cfg Config) *Machine {
	d := DefaultConfig()
	if cfg.Project == "" {
		cfg.Project = d.Project
	}
	if cfg.Lease <= 0 {
		cfg.Lease = d.Lease
	}
	if cfg.Beat <= 0 {
		cfg.Beat = d.Beat
	}
	if cfg.Retry <= 0 {
		cfg.Retry = d.Retry
	}
	if cfg.SessionTTL <= 0 {
		cfg.SessionTTL = d.SessionTTL
	}
	if cfg.ReplyWindow <= 0 {
		cfg.ReplyWindow = d.ReplyWindow
	}
	if cfg.HostFLOPS <= 0 {
		cfg.HostFLOPS = d.HostFLOPS
	}
	if cfg.DeadlineSecs <= 0 {
		cfg.DeadlineSecs = d.DeadlineSecs
	}
	return &Machine{cfg: cfg, st: newState()}
}

// Apply applies one log entry and returns the reply for its requester.
func (m *Machine) Apply(e vpeer.Entry) []byte {
	if !e.Time.IsZero() && e.Time.After(m.st.Now) {
		m.st.Now = e.Time
	}
	if e.Tick {
		m.tick()
		return nil
	}
	cmd, err := wu.DecodeLimit[wu.Command](e.Payload, wu.MaxAdminMessageBytes)
	if err != nil {
		return wu.Encode(wu.Ack{V: wu.WireVersion, Error: asError(err)})
	}
	if cmd.Seq == 0 || cmd.Host == "" {
		return m.dispatch(cmd)
	}
	// A request that names its requester and sequence is applied once; a
	// retry gets the first reply again.
	s := m.st.Sessions[cmd.Host]
	if s == nil {
		s = &session{Replies: map[uint64][]byte{}}
		m.st.Sessions[cmd.Host] = s
	}
	s.LastUsed = m.st.Now
	if r, ok := s.Replies[cmd.Seq]; ok {
		return r
	}
	if s.Last >= uint64(m.cfg.ReplyWindow) && cmd.Seq <= s.Last-uint64(m.cfg.ReplyWindow) {
		return wu.Encode(wu.Ack{V: wu.WireVersion, Error: wu.Errorf(wu.CodeConflict,
			"request %d is older than the last %d requests of %s: send hello and start again", cmd.Seq, m.cfg.ReplyWindow, cmd.Host)})
	}
	reply := m.dispatch(cmd)
	s.Replies[cmd.Seq] = reply
	if cmd.Seq > s.Last {
		s.Last = cmd.Seq
	}
	for q := range s.Replies {
		if q+uint64(m.cfg.ReplyWindow) <= s.Last {
			delete(s.Replies, q)
		}
	}
	return reply
}

func (m *Machine) dispatch(cmd wu.Command) []byte {
	switch cmd.Op {
	case wu.OpHello:
		return body(cmd, m.hello)
	case wu.OpWork:
		return body(cmd, m.work)
	case wu.OpBeat:
		return body(cmd, m.beat)
	case wu.OpResult:
		return body(cmd, m.result)
	case wu.OpAddApp:
		return body(cmd, m.addApp)
	case wu.OpSubmit:
		return body(cmd, m.submit)
	}
	return wu.Encode(wu.Ack{V: wu.WireVersion, Error: wu.Errorf(wu.CodeBadRequest, "unknown operation %q", cmd.Op)})
}

// body decodes the command's body as a Req, runs op and encodes its reply.
// A decoding or operation error is encoded as an Ack: every reply type has
// the same "error" field, so the requester reads it whatever it expected.
// Operations check everything before they change anything, so an error
// leaves the state as it was.
func body[Req any, P interface {
	*Req
	Validate() error
}, Rep any](cmd wu.Command, op func(host string, req Req) (Rep, error)) []byte {
	req, err := wu.DecodeLimit[Req, P](cmd.Body, wu.MaxAdminMessageBytes)
	if err == nil {
		var rep Rep
		rep, err = op(cmd.Host, req)
		if err == nil {
			return wu.Encode(rep)
		}
	}
	return wu.Encode(wu.Ack{V: wu.WireVersion, Error: asError(err)})
}

func asError(err error) *wu.Error {
	if e, ok := err.(*wu.Error); ok {
		return e
	}
	return wu.Errorf(wu.CodeInternal, "%v", err)
}

// Snapshot writes the whole state.
func (m *Machine) Snapshot(w io.Writer) error {
	if err := json.NewEncoder(w).Encode(m.st); err != nil {
		return fmt.Errorf("scheduler snapshot: %w", err)
	}
	return nil
}

// Restore replaces the state with a snapshot's.
func (m *Machine) Restore(r io.Reader) error {
	st := &state{}
	if err := json.NewDecoder(r).Decode(st); err != nil {
		return fmt.Errorf("scheduler restore: %w", err)
	}
	for _, mp := range []bool{st.Apps == nil, st.Batches == nil, st.Units == nil, st.Tasks == nil, st.Hosts == nil, st.Sessions == nil, st.Assigned == nil} {
		if mp {
			return fmt.Errorf("scheduler restore: snapshot lacks a table")
		}
	}
	for _, s := range st.Sessions {
		if s.Replies == nil {
			s.Replies = map[uint64][]byte{}
		}
	}
	m.st = st
	return nil
}

func (m *Machine) hello(id string, req wu.Hello) (*wu.HelloReply, error) {
	if !wu.ValidHostID(id) {
		return nil, wu.Errorf(wu.CodeBadRequest, "host id %q is malformed", id)
	}
	h := m.st.Hosts[id]
	if h == nil {
		h = &host{ID: id}
		m.st.Hosts[id] = h
	}
	h.Info = req.Host
	h.LastSeen = m.st.Now
	next := uint64(1)
	if s := m.st.Sessions[id]; s != nil {
		// Skip past every sequence number the host's previous run may still
		// have in flight, so that none of them is taken for a retry.
		next = s.Last + uint64(m.cfg.ReplyWindow) + 1
	}
	return &wu.HelloReply{
		V:            wu.WireVersion,
		Project:      m.cfg.Project,
		NextSeq:      next,
		BeatSeconds:  m.cfg.Beat.Seconds(),
		LeaseSeconds: m.cfg.Lease.Seconds(),
	}, nil
}

func (m *Machine) knownHost(id string) (*host, error) {
	h := m.st.Hosts[id]
	if h == nil {
		return nil, wu.Errorf(wu.CodeNotFound, "host %q is not registered: send hello first", id)
	}
	h.LastSeen = m.st.Now
	return h, nil
}

func (m *Machine) work(id string, req wu.WorkRequest) (*wu.WorkReply, error) {
	if _, err := m.knownHost(id); err != nil {
		return nil, err
	}
	rep := &wu.WorkReply{V: wu.WireVersion}
	var skipped []string
	for len(rep.Assignments) < req.Slots {
		tid, ok := m.popUnsent()
		if !ok {
			break
		}
		t := m.st.Tasks[tid]
		u := m.st.Units[t.Unit]
		if m.holdsReplica(id, u, t.ID) {
			skipped = append(skipped, tid)
			continue
		}
		rep.Assignments = append(rep.Assignments, m.assign(t, u, id))
	}
	m.st.Retry = append(skipped, m.st.Retry...)
	if len(rep.Assignments) == 0 {
		rep.RetrySeconds = m.cfg.Retry.Seconds()
	}
	return rep, nil
}

// popUnsent takes the next task that is still unsent, retries first.
func (m *Machine) popUnsent() (string, bool) {
	for _, q := range []*[]string{&m.st.Retry, &m.st.Unsent} {
		for len(*q) > 0 {
			id := (*q)[0]
			*q = (*q)[1:]
			if t := m.st.Tasks[id]; t != nil && t.State == wu.TaskUnsent {
				return id, true
			}
		}
	}
	return "", false
}

// holdsReplica reports whether host id holds, or has reported, another
// replica of u: two replicas of one work unit never go to the same host.
func (m *Machine) holdsReplica(id string, u *unit, except string) bool {
	for _, tid := range u.Tasks {
		t := m.st.Tasks[tid]
		if tid != except && t.Host == id && (t.State == wu.TaskAssigned || t.State == wu.TaskReported) {
			return true
		}
	}
	return false
}

func (m *Machine) assign(t *task, u *unit, hostID string) wu.Assignment {
	now := m.st.Now
	t.State = wu.TaskAssigned
	t.Host = hostID
	t.Sent = now
	t.LeaseUntil = now.Add(m.cfg.Lease)
	t.Deadline = now.Add(time.Duration(u.Deadline * float64(time.Second)))
	t.Fraction = 0
	m.st.Assigned[t.ID] = true
	return wu.Assignment{
		Task:     t.ID,
		WorkUnit: u.ID,
		App:      u.App,
		AppHash:  u.AppHash,
		AppSize:  u.AppSize,
		Args:     u.Args,
		Stdin:    u.Stdin,
		Limits:   u.Limits,
		Deadline: t.Deadline,
		FPOps:    u.FPOps,
	}
}

func (m *Machine) beat(id string, req wu.Beat) (*wu.BeatReply, error) {
	if _, err := m.knownHost(id); err != nil {
		return nil, err
	}
	rep := &wu.BeatReply{V: wu.WireVersion}
	for _, p := range req.Tasks {
		t := m.st.Tasks[p.Task]
		if t == nil || t.State != wu.TaskAssigned || t.Host != id {
			rep.Abort = append(rep.Abort, p.Task)
			continue
		}
		t.LeaseUntil = m.st.Now.Add(m.cfg.Lease)
		t.Fraction = min(max(p.Fraction, 0), 1)
	}
	return rep, nil
}

func (m *Machine) result(id string, req wu.Report) (*wu.Ack, error) {
	h, err := m.knownHost(id)
	if err != nil {
		return nil, err
	}
	t := m.st.Tasks[req.Task]
	// A task whose lease ran out is still accepted from its last holder as
	// long as nobody else has it: the work is done, so use it.
	if t == nil || t.Host != id || (t.State != wu.TaskAssigned && t.State != wu.TaskUnsent) {
		return nil, wu.Errorf(wu.CodeNotAssigned, "task %q is not assigned to host %s", req.Task, id)
	}
	u := m.st.Units[t.Unit]
	if req.Outcome == wu.OutcomeSuccess && req.OutputSize > u.Limits.OutputBytes {
		return nil, wu.Errorf(wu.CodeTooLarge, "output of %d bytes is over the work unit's limit of %d", req.OutputSize, u.Limits.OutputBytes)
	}
	delete(m.st.Assigned, t.ID)
	t.State = wu.TaskReported
	t.Outcome = req.Outcome
	t.Output = req.Output
	t.OutputSize = req.OutputSize
	t.CPUSeconds = req.CPUSeconds
	t.Reason = req.Reason
	t.Fraction = 1
	if req.Outcome == wu.OutcomeFailure {
		t.Validity = wu.ValidityInvalid
		h.Invalid++
	}
	if u.State == wu.WorkUnitPending {
		m.validate(u)
	} else if req.Outcome == wu.OutcomeSuccess {
		m.judgeLate(u, t)
	}
	return &wu.Ack{V: wu.WireVersion}, nil
}

// validate looks for a quorum of agreeing results and otherwise makes sure
// enough replicas are out to reach one.
func (m *Machine) validate(u *unit) {
	groups := map[wu.Hash]int{}
	live := 0
	best, bestN := wu.Hash(""), 0
	for _, tid := range u.Tasks {
		t := m.st.Tasks[tid]
		switch {
		case t.State == wu.TaskReported && t.Outcome == wu.OutcomeSuccess:
			groups[t.Output]++
			if n := groups[t.Output]; n > bestN || n == bestN && t.Output < best {
				best, bestN = t.Output, n
			}
		case t.State == wu.TaskUnsent || t.State == wu.TaskAssigned:
			live++
		}
	}
	if bestN >= u.Quorum {
		m.accept(u, best)
		return
	}
	need := u.Quorum - bestN - live
	for ; need > 0 && len(u.Tasks) < u.MaxTasks; need-- {
		m.addTask(u)
		live++
	}
	if bestN+live < u.Quorum {
		m.finish(u, wu.WorkUnitError, fmt.Sprintf("no quorum of %d agreeing results after %d tasks", u.Quorum, len(u.Tasks)))
	}
}

func (m *Machine) accept(u *unit, canonical wu.Hash) {
	u.Canonical = canonical
	var valid []*task
	for _, tid := range u.Tasks {
		t := m.st.Tasks[tid]
		if t.State != wu.TaskReported || t.Outcome != wu.OutcomeSuccess {
			continue
		}
		if t.Output == canonical {
			valid = append(valid, t)
			u.OutputSize = t.OutputSize
		} else {
			t.Validity = wu.ValidityInvalid
			m.st.Hosts[t.Host].Invalid++
		}
	}
	credit := m.grantedCredit(u, valid)
	for _, t := range valid {
		t.Validity = wu.ValidityValid
		h := m.st.Hosts[t.Host]
		h.Valid++
		h.Credit += credit
	}
	m.finish(u, wu.WorkUnitValid, "")
}

// judgeLate validates a result that arrived after its work unit was decided.
func (m *Machine) judgeLate(u *unit, t *task) {
	h := m.st.Hosts[t.Host]
	if u.State == wu.WorkUnitValid && t.Output == u.Canonical {
		t.Validity = wu.ValidityValid
		h.Valid++
		h.Credit += m.grantedCredit(u, []*task{t})
		return
	}
	t.Validity = wu.ValidityInvalid
	h.Invalid++
}

// grantedCredit is the Cobblestones each valid replica earns: the lowest
// claim among them (a claim is CPU time at the host's measured speed), capped
// by the work unit's estimated size when it has one.
func (m *Machine) grantedCredit(u *unit, valid []*task) float64 {
	const cobblestone = 1e9 * 86400 / 200 // floating-point operations per Cobblestone
	claim := math.Inf(1)
	for _, t := range valid {
		flops := m.st.Hosts[t.Host].Info.FLOPS
		if flops <= 0 {
			flops = m.cfg.HostFLOPS
		}
		claim = min(claim, t.CPUSeconds*flops/cobblestone)
	}
	if math.IsInf(claim, 1) {
		return 0
	}
	if u.FPOps > 0 {
		claim = min(claim, u.FPOps/cobblestone)
	}
	return claim
}

// finish decides a work unit and cancels the replicas it no longer needs.
func (m *Machine) finish(u *unit, s wu.WorkUnitState, reason string) {
	b := m.st.Batches[u.Batch]
	b.Pending--
	if s == wu.WorkUnitValid {
		b.Valid++
	} else {
		b.Errored++
	}
	u.State = s
	u.Reason = reason
	for _, tid := range u.Tasks {
		t := m.st.Tasks[tid]
		if t.State == wu.TaskUnsent || t.State == wu.TaskAssigned {
			t.State = wu.TaskCancelled
			delete(m.st.Assigned, tid)
		}
	}
}

func (m *Machine) addTask(u *unit) *task {
	t := &task{ID: u.ID + "_" + strconv.Itoa(len(u.Tasks)), Unit: u.ID, State: wu.TaskUnsent}
	u.Tasks = append(u.Tasks, t.ID)
	m.st.Tasks[t.ID] = t
	m.st.Unsent = append(m.st.Unsent, t.ID)
	return t
}

func (m *Machine) tick() {
	now := m.st.Now
	var lost []string
	for tid := range m.st.Assigned {
		if t := m.st.Tasks[tid]; now.After(t.LeaseUntil) || now.After(t.Deadline) {
			lost = append(lost, tid)
		}
	}
	sort.Strings(lost)
	for _, tid := range lost {
		t := m.st.Tasks[tid]
		delete(m.st.Assigned, tid)
		u := m.st.Units[t.Unit]
		m.st.Hosts[t.Host].Lost++
		if now.After(t.Deadline) {
			t.State = wu.TaskReported
			t.Outcome = wu.OutcomeFailure
			t.Validity = wu.ValidityInvalid
			t.Reason = "missed its deadline"
			m.validate(u)
			continue
		}
		t.State = wu.TaskUnsent
		t.Lost++
		m.st.Retry = append(m.st.Retry, tid)
	}
	var stale []string
	for id, s := range m.st.Sessions {
		if now.Sub(s.LastUsed) > m.cfg.SessionTTL {
			stale = append(stale, id)
		}
	}
	for _, id := range stale {
		delete(m.st.Sessions, id)
	}
}

func (m *Machine) addApp(_ string, req wu.AddApp) (*wu.Ack, error) {
	m.st.Apps[req.Name] = wu.App{Name: req.Name, Hash: req.Hash, Size: req.Size, Added: m.st.Now}
	return &wu.Ack{V: wu.WireVersion}, nil
}

func (m *Machine) submit(_ string, req wu.Submit) (*wu.SubmitReply, error) {
	app, ok := m.st.Apps[req.App]
	if !ok {
		return nil, wu.Errorf(wu.CodeNotFound, "unknown app %q: publish it first with `momonga-project app add %s FILE.wasm`", req.App, req.App)
	}
	b := m.st.Batches[req.Batch]
	if b != nil && b.App != req.App {
		return nil, wu.Errorf(wu.CodeConflict, "batch %q runs app %q, not %q", req.Batch, b.App, req.App)
	}
	repl, quorum := req.Replication, req.Quorum
	if repl == 0 {
		repl = max(quorum, 1)
	}
	if quorum == 0 {
		quorum = repl
	}
	if quorum > repl {
		return nil, wu.Errorf(wu.CodeBadRequest, "quorum %d is larger than replication %d", quorum, repl)
	}
	deadline := req.DeadlineSeconds
	if deadline == 0 {
		deadline = m.cfg.DeadlineSecs
	}
	limits := req.Limits.WithDefaults()
	// Names are checked before anything changes, so a bad submission adds
	// nothing.
	names := make([]string, len(req.Units))
	seen := map[string]bool{}
	if b != nil {
		for _, n := range b.Names {
			seen[n] = true
		}
	}
	base := 0
	if b != nil {
		base = len(b.Units)
	}
	for i, us := range req.Units {
		n := us.Name
		if n == "" {
			n = fmt.Sprintf("%06d", base+i)
		}
		if seen[n] {
			return nil, wu.Errorf(wu.CodeConflict, "batch %q already has a work unit named %q", req.Batch, n)
		}
		seen[n] = true
		names[i] = n
	}
	if b == nil {
		b = &batch{Name: req.Batch, App: req.App}
		m.st.Batches[req.Batch] = b
	}
	rep := &wu.SubmitReply{V: wu.WireVersion, Batch: req.Batch}
	for i, us := range req.Units {
		m.st.NextUnit++
		u := &unit{
			ID: "wu" + strconv.FormatUint(m.st.NextUnit, 10), Name: names[i], Batch: req.Batch,
			App: app.Name, AppHash: app.Hash, AppSize: app.Size,
			Args: us.Args, Stdin: us.Stdin, FPOps: us.FPOps, Limits: limits, Deadline: deadline,
			Replication: repl, Quorum: quorum, MaxTasks: 2*repl + 2, State: wu.WorkUnitPending,
		}
		m.st.Units[u.ID] = u
		b.Units = append(b.Units, u.ID)
		b.Names = append(b.Names, u.Name)
		b.Pending++
		for r := 0; r < repl; r++ {
			m.addTask(u)
		}
		rep.Units = append(rep.Units, u.ID)
	}
	return rep, nil
}
