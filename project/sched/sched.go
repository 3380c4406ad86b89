// Package sched is the project's scheduler: a deterministic state machine
// that a virtual peer replicates (DESIGN §3, §5, §8).
//
// Entries are workunits.Command values decoded from the log, plus ticks that
// carry the time. Apply turns each into a reply and a new state, reading no
// clock, no file and no network, so every member of the virtual peer that
// applies the same log reaches the same state and gives the same replies.
package sched

import (
	"fmt"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/momonga-project/momonga/vpeer/fsm"
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

	// SigningKey is the public key the project's apps are signed with
	// (workunits.FormatPublicKey), given to hosts to pin.
	SigningKey string
	// MaxFLOPS caps the benchmark a host claims credit with, and with a
	// unit's time limit bounds the credit of a unit that has no size.
	MaxFLOPS float64
	// Adaptive replication: a host whose last TrustAfter results agreed
	// with other hosts' may get single replicas; each of its units is still
	// replicated with probability max(TrustAfter/streak, SpotCheck).
	TrustAfter int
	SpotCheck  float64

	// Policy is how tasks are chosen for a host: PolicyCapability (the
	// default) or PolicyFCFS (capability.go).
	Policy string
	// MaxTasksPerCore bounds the tasks a host holds at once, per core it
	// reports (BOINC's max_wus_in_progress); default 2, negative for no
	// bound.
	MaxTasksPerCore int
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
		MaxFLOPS:     1e11,
		TrustAfter:   10,
		SpotCheck:    0.1,

		Policy:          PolicyCapability,
		MaxTasksPerCore: 2,
	}
}

// Machine is the scheduler state machine. It implements fsm.StateMachine.
// It is not safe for concurrent use: the vpeer member serialises Apply and
// queries.
type Machine struct {
	cfg    Config
	st     *state
	ix     indexes
	leases leases // when tasks out on hosts may expire (leases.go)
	seq    uint64 // log sequence of the entry being applied: a source of deterministic chance

	six statsIndex // derived from st for the stats site: stats.go
	// platforms holds one copy of each platform hosts describe themselves
	// with (hostinfo.go): a million hosts name a few hundred.
	platforms map[platform]*platform

	workReply wu.WorkReply // scratch of work, not state
	picked    pickScratch  // scratch of pickFrom, not state
	outs      []any        // outputs of the entry being applied, not state
	available int          // tasks the entry being applied queued, not state
	withheld  int64        // ms until a task left for a faster host may go to the requester (finish.go), not state
}

var (
	_ fsm.Emitter = (*Machine)(nil)
	_ fsm.Sizer   = (*Machine)(nil)
)

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
	if cfg.MaxFLOPS <= 0 {
		cfg.MaxFLOPS = d.MaxFLOPS
	}
	if cfg.TrustAfter <= 0 {
		cfg.TrustAfter = d.TrustAfter
	}
	if !(cfg.SpotCheck > 0 && cfg.SpotCheck <= 1) {
		cfg.SpotCheck = d.SpotCheck
	}
	if cfg.Policy != PolicyFCFS {
		cfg.Policy = d.Policy
	}
	if cfg.MaxTasksPerCore == 0 {
		cfg.MaxTasksPerCore = d.MaxTasksPerCore
	}
	m := &Machine{cfg: cfg, st: newState()}
	m.reindex()
	return m
}

// Apply applies one log entry and returns the reply for its requester.
func (m *Machine) Apply(e fsm.Entry) []byte {
	m.seq = e.Seq
	clear(m.outs) // no reference to the last entry's outputs stays behind
	m.outs = m.outs[:0]
	m.available = 0
	defer m.announce()
	if !e.Time.IsZero() && e.Time.After(m.st.Now) {
		if !m.st.Now.IsZero() && e.Time.Sub(m.st.Now) > m.outageGap() {
			m.resumeAfterOutage(e.Time)
		}
		m.st.Now = e.Time
		// Whatever the entry, as a replica restored now would count them.
		m.retire(e.Time)
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
	s.remember(cmd.Seq, reply, uint64(m.cfg.ReplyWindow))
	return reply
}

// remember keeps the reply to request seq and forgets those that fell out
// of the window: the replies to every q with q+window <= Last, in uint64
// arithmetic. None had before this request, when Last was prev, so only the
// q with q+window in (prev, Last] and seq itself can have now: a few
// deletions rather than a walk over the map, unless the requester jumped
// far ahead.
func (s *session) remember(seq uint64, reply []byte, window uint64) {
	s.Replies[seq] = reply
	prev := s.Last
	if seq > s.Last {
		s.Last = seq
	}
	if s.Last-prev > window {
		for q := range s.Replies {
			if q+window <= s.Last {
				delete(s.Replies, q)
			}
		}
		return
	}
	for i := uint64(1); i <= s.Last-prev; i++ {
		delete(s.Replies, prev+i-window)
	}
	if seq+window <= s.Last {
		delete(s.Replies, seq)
	}
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
	case wu.OpCkpt:
		return body(cmd, m.checkpoint)
	case wu.OpCkptDropped:
		return body(cmd, m.checkpointsDropped)
	case OpOutputsAcked:
		return body(cmd, m.outputsAcked)
	case wu.OpCancel:
		return body(cmd, m.cancel)
	}
	if reply, ok := m.dispatchAccounts(cmd); ok {
		return reply
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

func (m *Machine) hello(id string, req wu.Hello) (*wu.HelloReply, error) {
	if !wu.ValidHostID(id) {
		return nil, wu.Errorf(wu.CodeBadRequest, "host id %q is malformed", id)
	}
	h := m.st.Hosts[id]
	if h == nil {
		h = &host{ID: id, Created: m.st.Now}
		m.st.Hosts[id] = h
		m.numberHost(h)
	}
	if h.Revoked {
		return nil, errRevoked(id)
	}
	h.Info = m.compact(req.Host)
	h.LastSeen = m.st.Now
	m.rank(h)
	m.placeServer(h, req.Server)
	next := uint64(1)
	if s := m.st.Sessions[id]; s != nil {
		// Skip past every sequence number the host's previous run may still
		// have in flight, so that none of them is taken for a retry.
		next = s.Last + uint64(m.cfg.ReplyWindow) + 1
	}
	return &wu.HelloReply{
		V:                      wu.WireVersion,
		Project:                m.cfg.Project,
		NextSeq:                next,
		BeatSeconds:            m.cfg.Beat.Seconds(),
		LeaseSeconds:           m.cfg.Lease.Seconds(),
		SigningKey:             m.cfg.SigningKey,
		ReconnectSpreadSeconds: m.reconnectSpread(h).Seconds(),
	}, nil
}

func (m *Machine) knownHost(id string) (*host, error) {
	h := m.st.Hosts[id]
	if h == nil {
		return nil, wu.Errorf(wu.CodeNotFound, "host %q is not registered: send hello first", id)
	}
	if h.Revoked {
		return nil, errRevoked(id)
	}
	m.seenNow(h)
	return h, nil
}

func (m *Machine) work(id string, req wu.WorkRequest) (*wu.WorkReply, error) {
	h, err := m.knownHost(id)
	if err != nil {
		return nil, err
	}
	// The reply is encoded before the next entry is applied, so one serves
	// every request.
	rep := &m.workReply
	*rep = wu.WorkReply{V: wu.WireVersion, Assignments: rep.Assignments[:0]}
	n := min(req.Slots, m.limit(h)-m.ix.running[h.ID])
	m.withheld = 0
	resent := 0
	if req.HeldAll {
		resent = m.resendLost(h, req.Held, rep)
	}
	assign := func(t *task, u *unit) bool {
		if m.holdsReplica(h, u, t.ID) {
			return false
		}
		rep.Assignments = append(rep.Assignments, m.assign(t, u, h))
		return true
	}
	if n > 0 {
		if m.cfg.Policy == PolicyFCFS {
			m.pickFCFS(n, assign)
		} else {
			m.pickCapable(h, n, req.Cache, assign)
		}
	}
	got := len(rep.Assignments) - resent
	m.setIdle(h, got < n)
	if got == 0 {
		rep.RetrySeconds = m.retryAfter().Seconds()
	}
	return rep, nil
}

// resendLost puts in rep, in task order and with their leases renewed, the
// tasks h holds by the project's account that h does not name in held: the
// reply that gave them never reached it (the host gave up waiting, or its
// state file was lost). The host keeps one copy of a task it holds already,
// so a task sent twice by a reply that crossed the request costs nothing.
// It reports how many it put.
func (m *Machine) resendLost(h *host, held []string, rep *wu.WorkReply) int {
	mine := m.ix.held[h.ID]
	if len(mine) == 0 {
		return 0
	}
	named := make(map[string]struct{}, len(held))
	for _, id := range held {
		named[id] = struct{}{}
	}
	var lost []*task
	for _, t := range mine {
		if _, ok := named[t.ID]; !ok && t.State == wu.TaskAssigned && t.Host == h.ID {
			lost = append(lost, t)
		}
	}
	slices.SortFunc(lost, func(a, b *task) int { return strings.Compare(a.ID, b.ID) })
	for _, t := range lost {
		t.LeaseUntil = m.st.Now.Add(m.cfg.Lease)
		rep.Assignments = append(rep.Assignments, m.assignment(t, m.st.Units[t.Unit]))
	}
	return len(lost)
}

// pickFCFS gives a host up to n tasks, through assign, in the order they
// wait: the tasks to send again first, then the queue.
func (m *Machine) pickFCFS(n int, assign func(*task, *unit) bool) {
	var skipped []string
	for got := 0; got < n; {
		t, ok := m.popUnsent()
		if !ok {
			break
		}
		if !assign(t, m.st.Units[t.Unit]) {
			skipped = append(skipped, t.ID)
			continue
		}
		got++
	}
	m.st.Retry = append(skipped, m.st.Retry...)
}

// popUnsent takes the next task that is still unsent, retries first.
func (m *Machine) popUnsent() (*task, bool) {
	for _, q := range []*[]string{&m.st.Retry, &m.st.Unsent} {
		for len(*q) > 0 {
			id := (*q)[0]
			*q = (*q)[1:]
			if t := m.st.Tasks[id]; waiting(t) {
				return t, true
			}
		}
	}
	return nil, false
}

// holdsReplica reports whether h, or another host of the same user, holds
// or has reported another replica of u: two replicas of one work unit never
// go to one user, so nobody can validate their own results.
func (m *Machine) holdsReplica(h *host, u *unit, except string) bool {
	owner := m.owner(h)
	for _, tid := range u.Tasks {
		if tid == except {
			continue
		}
		t := m.st.Tasks[tid]
		if t.Host == "" || t.State != wu.TaskAssigned && t.State != wu.TaskReported {
			continue
		}
		if other := m.st.Hosts[t.Host]; t.Host == h.ID || other != nil && m.owner(other) == owner {
			return true
		}
	}
	return false
}

func (m *Machine) assign(t *task, u *unit, h *host) wu.Assignment {
	m.decideReplication(u, t, h)
	now := m.st.Now
	m.setTaskState(t, wu.TaskAssigned)
	t.Host = h.ID
	t.Sent = now
	t.LeaseUntil = now.Add(m.cfg.Lease)
	t.Deadline = now.Add(time.Duration(u.Deadline * float64(time.Second)))
	t.Fraction = 0
	t.Expect = m.expect(u, h)
	t.Est = m.estimate(u, h)
	give(h, u)
	m.hold(t)
	m.noteAssigned(h, t)
	return m.assignment(t, u)
}

// assignment is what a host is told of t, a task of u it holds.
func (m *Machine) assignment(t *task, u *unit) wu.Assignment {
	return wu.Assignment{
		Task:     t.ID,
		WorkUnit: u.ID,
		App:      u.App,
		AppHash:  u.AppHash,
		AppSize:  u.AppSize,
		AppSig:   m.st.AppSigs[u.AppHash],
		Args:     u.Args,
		Stdin:    u.Stdin,
		Limits:   u.Limits,
		Deadline: t.Deadline,
		FPOps:    u.FPOps,

		Checkpoint:        t.Checkpoint,
		CheckpointSeconds: u.CheckpointSeconds,
	}
}

func (m *Machine) beat(id string, req wu.Beat) (*wu.BeatReply, error) {
	if _, err := m.knownHost(id); err != nil {
		return nil, err
	}
	rep := &wu.BeatReply{V: wu.WireVersion}
	for _, p := range req.Tasks {
		t := m.st.Tasks[p.Task]
		if t != nil && t.State == wu.TaskUnsent && t.Host == id {
			// The lease ran out (the project was down, or the host's beats
			// were late) and nobody has taken the task since: its holder is
			// still computing it, so it keeps it. Its place in the queue is
			// dropped when it reaches the front.
			m.setTaskState(t, wu.TaskAssigned)
			m.hold(t)
		}
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
	m.release(t)
	m.dropCheckpoint(t)
	if req.Outcome == wu.OutcomeSuccess {
		m.measure(t, u, h, req.CPUSeconds)
	}
	m.setTaskState(t, wu.TaskReported)
	m.noteReported(h, t)
	t.Outcome = req.Outcome
	t.Output = req.Output
	t.OutputSize = req.OutputSize
	t.CPUSeconds = req.CPUSeconds
	t.Claim = m.claim(h, req.CPUSeconds)
	t.Reason = req.Reason
	t.Fraction = 1
	if req.Outcome == wu.OutcomeFailure {
		m.invalidate(t)
	}
	if u.State == wu.WorkUnitPending {
		m.validate(u)
	} else if req.Outcome == wu.OutcomeSuccess {
		m.judgeLate(u, t)
	}
	return &wu.Ack{V: wu.WireVersion}, nil
}

// finish decides a work unit and cancels the replicas it no longer needs;
// the units waiting for its result take it, or one of them computes it
// instead (share.go).
func (m *Machine) finish(u *unit, s wu.WorkUnitState, reason string) {
	b := m.st.Batches[u.Batch]
	b.Pending--
	switch s {
	case wu.WorkUnitValid:
		b.Valid++
	case wu.WorkUnitCancelled:
		b.Cancelled++
	default:
		b.Errored++
	}
	u.State = s
	u.Reason = reason
	m.noteFinished(b.Name)
	if s != wu.WorkUnitValid {
		delete(m.st.Compare, u.ID)
	}
	for _, tid := range u.Tasks {
		t := m.st.Tasks[tid]
		if t.State == wu.TaskUnsent || t.State == wu.TaskAssigned {
			m.setTaskState(t, wu.TaskCancelled)
			m.release(t)
			m.dropCheckpoint(t)
		}
	}
	m.settleFollowers(u)
}

// addTask adds a replica to u. An urgent one, needed to decide a unit that
// is already under way, goes out before the queue of new work.
func (m *Machine) addTask(u *unit, urgent bool) *task {
	t := &task{ID: u.ID + "_" + strconv.Itoa(len(u.Tasks)), Unit: u.ID, State: wu.TaskUnsent}
	m.six.tasks[wu.TaskUnsent]++
	m.ix.waiting[bucket(u.FPOps)]++
	u.Tasks = append(u.Tasks, t.ID)
	m.st.Tasks[t.ID] = t
	if urgent {
		m.st.Retry = append(m.st.Retry, t.ID)
	} else {
		m.st.Unsent = append(m.st.Unsent, t.ID)
	}
	m.queued(t)
	return t
}

// minOutageGap is the shortest gap between ticks taken for an outage: five
// times the lease holder's tick interval, so that late ticks never extend
// leases again and again.
const minOutageGap = 5 * time.Second

// outageGap is how long the log may go without a tick before the scheduler
// takes it for an outage: a host that beats on time may have beaten last a
// beat before the gap and need a beat after it, so a gap of more than
// Lease-2·Beat could take its task.
func (m *Machine) outageGap() time.Duration {
	return max(m.cfg.Lease-2*m.cfg.Beat, minOutageGap)
}

// resumeAfterOutage gives every assigned task a whole lease from now, the
// time of the first entry after a gap in the log longer than outageGap.
// While the scheduler runs, its lease holder puts a tick in the log every
// second; such a gap means the project was down (stopped for an upgrade,
// every member lost, a long election), and its volunteers could not beat
// meanwhile, or their beats were stamped with the time before the gap.
// Their tasks are not lost for that: they get a lease's time to beat
// again, as the project had never stopped. Deadlines stay as they are.
// Every member sees the same gap in the same entries, so all of them extend
// the same leases.
func (m *Machine) resumeAfterOutage(now time.Time) {
	until := now.Add(m.cfg.Lease)
	for tid := range m.st.Assigned {
		if t := m.st.Tasks[tid]; t.LeaseUntil.Before(until) {
			t.LeaseUntil = until
		}
	}
}

func (m *Machine) tick() {
	now := m.st.Now
	lost := m.expired(now)
	sort.Strings(lost)
	for _, tid := range lost {
		t := m.st.Tasks[tid]
		m.release(t)
		u := m.st.Units[t.Unit]
		h := m.st.Hosts[t.Host]
		h.Lost++
		m.rank(h)
		if now.After(t.Deadline) {
			m.setTaskState(t, wu.TaskReported)
			t.Outcome = wu.OutcomeFailure
			t.Validity = wu.ValidityInvalid
			t.Reason = "missed its deadline"
			m.dropCheckpoint(t)
			m.validate(u)
			continue
		}
		m.setTaskState(t, wu.TaskUnsent)
		t.Lost++
		m.st.Retry = append(m.st.Retry, tid)
		m.queued(t)
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
	m.st.Apps[req.Name] = wu.App{Name: req.Name, Hash: req.Hash, Size: req.Size, Added: m.st.Now, Policy: req.Policy}
	if req.Signature != "" {
		m.st.AppSigs[req.Hash] = req.Signature
	}
	for _, s := range req.CodeSigs {
		m.st.CodeSigs[s.MD5] = s.Signature
	}
	return &wu.Ack{V: wu.WireVersion}, nil
}

// CodeSignature is the BOINC code signature an app was added with for the
// file whose md5 is sum.
func (m *Machine) CodeSignature(sum string) (string, bool) {
	sig, ok := m.st.CodeSigs[sum]
	return sig, ok
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
	pol := app.Policy
	repl, quorum := req.Replication, req.Quorum
	if repl == 0 && quorum == 0 {
		repl, quorum = pol.Replication, pol.Quorum
	}
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
		m.st.Progress[req.Batch] = &progress{Created: m.st.Now}
	}
	rep := &wu.SubmitReply{V: wu.WireVersion, Batch: req.Batch}
	maxTasks := pol.MaxTasks
	if maxTasks < repl {
		maxTasks = 2*repl + 2
	}
	for i, us := range req.Units {
		m.st.NextUnit++
		fpops := us.FPOps
		if fpops == 0 {
			fpops = pol.FPOps
		}
		u := &unit{
			ID: "wu" + strconv.FormatUint(m.st.NextUnit, 10), Name: names[i], Batch: req.Batch,
			App: app.Name, AppHash: app.Hash, AppSize: app.Size,
			Args: us.Args, Stdin: us.Stdin, FPOps: fpops, Limits: limits, Deadline: deadline, CheckpointSeconds: req.CheckpointSeconds,
			Replication: repl, Quorum: quorum, MaxTasks: maxTasks, State: wu.WorkUnitPending,
			Tolerance: pol.Tolerance, NoShare: req.NoShare,
		}
		if pol.Adaptive && quorum >= 2 {
			u.Adaptive, u.FullQuorum = true, quorum
		}
		m.st.Units[u.ID] = u
		b.Units = append(b.Units, u.ID)
		b.Names = append(b.Names, u.Name)
		b.Pending++
		m.start(u)
		rep.Units = append(rep.Units, u.ID)
	}
	return rep, nil
}
