package vpeer

import (
	"cmp"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// GroupSpec is what every process running members of a group agrees on.
// The process that creates the group writes it in the registry
// (WriteSpec); joining processes read it (ReadSpec).
type GroupSpec struct {
	Size int `json:"size"` // members the group keeps running
	// Params is the machine's configuration, opaque to vpeer: members of
	// one group must build the same machine.
	Params json.RawMessage `json:"params,omitempty"`
}

func specKey(group string) string           { return group + ".spec" }
func leaseKey(group string) string          { return group + ".lease" }
func slotKey(group string, slot int) string { return group + ".slot." + strconv.Itoa(slot) }

// WriteSpec records the spec of group in reg, replacing any earlier one.
func WriteSpec(ctx context.Context, reg Registry, group string, spec GroupSpec) error {
	b, err := json.Marshal(spec)
	if err != nil {
		return err
	}
	for {
		_, rev, err := reg.Get(ctx, specKey(group))
		switch {
		case errors.Is(err, ErrNotFound):
			_, err = reg.Create(ctx, specKey(group), b)
		case err == nil:
			_, err = reg.Update(ctx, specKey(group), b, rev)
		}
		if !errors.Is(err, ErrConflict) {
			if err != nil {
				return fmt.Errorf("vpeer: write the spec of group %s: %w", group, err)
			}
			return nil
		}
	}
}

// EnsureSpec records spec for group in reg unless a spec is there already,
// and returns the spec the group has: what several processes starting a
// group together call, so that they all agree on the first one written
// whatever each was given.
func EnsureSpec(ctx context.Context, reg Registry, group string, spec GroupSpec) (GroupSpec, error) {
	b, err := json.Marshal(spec)
	if err != nil {
		return spec, err
	}
	_, err = reg.Create(ctx, specKey(group), b)
	switch {
	case err == nil:
		return spec, nil
	case !errors.Is(err, ErrConflict):
		return spec, fmt.Errorf("vpeer: write the spec of group %s: %w", group, err)
	}
	// Another process wrote it first. On a replicated registry the replica
	// that answers a read may not have it yet: look again for a while.
	for try := 0; ; try++ {
		got, err := ReadSpec(ctx, reg, group)
		if !errors.Is(err, ErrNoGroup) || try == specTries {
			return got, err
		}
		select {
		case <-ctx.Done():
			return got, err
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// specTries is how many more times EnsureSpec reads a spec whose creation
// another process won, when a replica says there is none.
const specTries = 30

// ErrNoGroup is returned by ReadSpec for a group whose spec was never
// written.
var ErrNoGroup = errors.New("vpeer: no such group")

// ReadSpec reads the spec of group from reg.
func ReadSpec(ctx context.Context, reg Registry, group string) (GroupSpec, error) {
	var spec GroupSpec
	b, _, err := reg.Get(ctx, specKey(group))
	if errors.Is(err, ErrNotFound) {
		return spec, fmt.Errorf("%w: no group named %q has been created", ErrNoGroup, group)
	}
	if err == nil {
		err = json.Unmarshal(b, &spec)
	}
	if err != nil {
		return spec, fmt.Errorf("vpeer: read the spec of group %s: %w", group, err)
	}
	return spec, nil
}

// GroupConfig configures the part of a group that runs in one process.
type GroupConfig struct {
	Name string // the group's name: keys in the registry start with it
	Size int    // members the group keeps running, all processes together
	// Capacity is how many members this process may run; default Size. A
	// process whose capacity is used by no slot waits as a spare.
	Capacity int
	// Process names this process in status reports; default the host name,
	// the process id and a random suffix.
	Process string

	Registry   Registry
	Log        Log
	Snapshots  SnapshotStore       // nil: members replay the whole log
	NewMachine func() StateMachine // a fresh machine for each member started
	Reply      func(subject string, data []byte) error
	// Outputs receives the outputs of the records this process's members
	// apply (see MemberConfig.Outputs), once for each record however many
	// members here apply it: the first member to get there hands them on.
	// Records replayed at start are included, so a receiver acts on what
	// happened while no member ran here too, if it still matters.
	Outputs func(seq uint64, outs []any)

	TickInterval    time.Duration // how often the lease holder appends a tick; 0: never
	SnapshotEvery   uint64        // see MemberConfig
	SnapshotSpacing uint64        // see MemberConfig
	KeepSnapshots   int           // see MemberConfig

	// Heartbeat is how often this process renews its slots and lease and
	// looks for lapsed ones; default one second.
	Heartbeat time.Duration
	// Lapse is how long a slot or the lease may go unrenewed before
	// another member takes it; default three heartbeats.
	Lapse time.Duration

	Now    func() time.Time // the clock ticks are stamped from; default time.Now
	Logger *slog.Logger
}

// A Group runs this process's members of a virtual peer (DESIGN §5).
//
// The group has Size slots, keys in the registry. A member holds a slot by
// renewing its key every heartbeat, and one of them holds the lease the same
// way: the lease holder appends ticks, stores snapshots and trims the log.
// Every process watches the keys it does not hold; one that nobody renews
// for Lapse (judged on the watcher's own clock, so clocks need not agree) is
// free, and a process with spare capacity takes it with a compare-and-set,
// starting a member there that restores the newest snapshot and replays the
// rest of the log. So a member that dies, with its process or alone, is
// replaced and the group keeps its size.
//
// Every member answers every request it applies; the requester keeps the
// first answer. Answers are computed from the log, so they are the same
// whoever sends them, and a request whose member dies between appending
// and answering is still answered by the others, without waiting for a
// lease to lapse.
type Group struct {
	cfg GroupConfig

	mu       sync.Mutex
	members  map[int]*groupMember // by slot
	next     int                  // members started, for their IDs
	lease    lease                // the lease as this process knows it
	floor    uint64               // lowest applied sequence among live slots
	observed map[string]observation
	terms    []LeaseTerm // the latest terms this process acted in, oldest first

	emitted   atomic.Uint64 // the last record whose outputs were handed on
	ready     chan struct{} // closed when a member here is first ready
	readyOnce sync.Once
	exited    chan struct{} // a member stopped
	wg        sync.WaitGroup
}

// groupMember is a member running in a slot of this process.
type groupMember struct {
	*Member
	slot    int
	rev     uint64 // of its slot key
	started time.Time
	cancel  context.CancelFunc
	done    chan struct{} // closed when Run has returned
	err     error         // what Run returned
}

type lease struct {
	holder  string // member ID here holding the lease, or ""
	rev     uint64
	term    uint64 // rev when the holder took the lease (Record.Term)
	renewed time.Time
}

// observation is a key this process does not hold, as last seen.
type observation struct {
	rev   uint64
	since time.Time // when rev was first seen, on this process's clock
}

// serving reports whether m has caught up with the log and still runs.
func (m *groupMember) serving() bool {
	select {
	case <-m.done:
		return false
	default:
	}
	select {
	case <-m.Ready():
		return true
	default:
		return false
	}
}

// slotValue is the value of a slot key, and leaseValue of the lease key.
type slotValue struct {
	Member  string `json:"member"`
	Process string `json:"process"`
	Applied uint64 `json:"applied"`
}

type leaseValue struct {
	Member  string `json:"member"`
	Process string `json:"process"`
}

// NewGroup returns the group part cfg describes; Run starts it.
func NewGroup(cfg GroupConfig) (*Group, error) {
	if cfg.Name == "" || cfg.Size <= 0 || cfg.Registry == nil || cfg.Log == nil || cfg.NewMachine == nil {
		return nil, errors.New("vpeer: a group needs a name, a size, a registry, a log and a machine")
	}
	if cfg.Capacity <= 0 {
		cfg.Capacity = cfg.Size
	}
	if cfg.Process == "" {
		cfg.Process = ProcessName()
	}
	if cfg.Heartbeat <= 0 {
		cfg.Heartbeat = time.Second
	}
	if cfg.Lapse <= 0 {
		cfg.Lapse = 3 * cfg.Heartbeat
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	cfg.Logger = cfg.Logger.With("group", cfg.Name)
	return &Group{
		cfg:      cfg,
		members:  make(map[int]*groupMember),
		observed: make(map[string]observation),
		ready:    make(chan struct{}),
		exited:   make(chan struct{}, 1),
	}, nil
}

// ProcessName is a name for this process in a group's status and its log:
// the host name, the process id and a random suffix.
func ProcessName() string {
	host, _ := os.Hostname()
	var b [3]byte
	_, _ = rand.Read(b[:])
	return fmt.Sprintf("%s-%d-%s", host, os.Getpid(), hex.EncodeToString(b[:]))
}

// Name is the group's name.
func (g *Group) Name() string { return g.cfg.Name }

// Process is this process's name in the group.
func (g *Group) Process() string { return g.cfg.Process }

// Run keeps this process's share of the group's slots filled until ctx is
// done, then stops its members and returns nil.
func (g *Group) Run(ctx context.Context) error {
	defer g.wg.Wait()
	defer g.stopAll()
	t := time.NewTicker(g.cfg.Heartbeat)
	defer t.Stop()
	for {
		g.beat(ctx)
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		case <-g.exited:
		}
	}
}

func (g *Group) stopAll() {
	g.mu.Lock()
	defer g.mu.Unlock()
	for _, m := range g.members {
		m.cancel()
	}
}

// beat does one heartbeat's work: forget members that stopped, renew the
// slots and the lease held here, and take free ones.
func (g *Group) beat(ctx context.Context) {
	g.reap()
	g.renewSlots(ctx)
	g.scanSlots(ctx)
	g.keepLease(ctx)
}

// reap forgets the members that stopped. Their slot keys are left to lapse,
// as they would if the whole process had died.
func (g *Group) reap() {
	g.mu.Lock()
	defer g.mu.Unlock()
	for slot, m := range g.members {
		select {
		case <-m.done:
		default:
			continue
		}
		delete(g.members, slot)
		if m.err != nil {
			g.cfg.Logger.Error("vpeer: member stopped", "member", m.ID(), "slot", slot, "err", m.err)
		} else {
			g.cfg.Logger.Warn("vpeer: member stopped", "member", m.ID(), "slot", slot)
		}
		if g.lease.holder == m.ID() {
			g.lease = lease{}
		}
	}
}

func (g *Group) local() []*groupMember {
	g.mu.Lock()
	defer g.mu.Unlock()
	ms := make([]*groupMember, 0, len(g.members))
	for _, m := range g.members {
		ms = append(ms, m)
	}
	slices.SortFunc(ms, func(a, b *groupMember) int { return a.slot - b.slot })
	return ms
}

// renewSlots renews the slot of every member here. A member whose slot was
// taken (it was thought dead) stops: its slot has a new member.
func (g *Group) renewSlots(ctx context.Context) {
	for _, m := range g.local() {
		v, _ := json.Marshal(slotValue{Member: m.ID(), Process: g.cfg.Process, Applied: m.Applied()})
		rev, err := g.set(ctx, slotKey(g.cfg.Name, m.slot), v, m.ID(), m.rev)
		switch {
		case err == nil:
			g.mu.Lock()
			m.rev = rev
			g.mu.Unlock()
		case errors.Is(err, errTaken):
			g.cfg.Logger.Warn("vpeer: slot taken over; stopping its old member", "slot", m.slot, "member", m.ID())
			m.cancel()
		case ctx.Err() == nil:
			g.cfg.Logger.Warn("vpeer: slot not renewed", "slot", m.slot, "err", err)
		}
	}
}

// set writes value, naming member, to key with a compare-and-set: it
// creates the key when rev is 0 and updates it from revision rev
// otherwise, and returns the new revision. errTaken means that another
// member's write came first.
//
// On a replicated registry a write can be stored while its answer is lost:
// it times out when the registry's leader stops, or a retry finds the
// first attempt stored and conflicts with it; the next renewal then
// conflicts with that write of member's own. Taken for a takeover, such a
// conflict would stop members that nobody replaces, in every process at
// once (all renew through the same leader), and leave the log unapplied
// until new members have replayed it. So a failed write is followed by a
// read of the key: newer than rev and naming member, the write was stored,
// and set returns its revision; naming another member, errTaken. A read
// that fails, or that a lagging replica answers with revision rev or
// older, decides nothing: set returns the write's error, and the caller
// tries again at the next heartbeat.
func (g *Group) set(ctx context.Context, key string, value []byte, member string, rev uint64) (uint64, error) {
	var (
		newRev uint64
		err    error
	)
	if rev == 0 {
		newRev, err = g.cfg.Registry.Create(ctx, key, value)
	} else {
		newRev, err = g.cfg.Registry.Update(ctx, key, value, rev)
	}
	if err == nil || ctx.Err() != nil {
		return newRev, err
	}
	b, cur, rerr := g.cfg.Registry.Get(ctx, key)
	if rerr != nil || cur <= rev {
		return 0, fmt.Errorf("%w (whether it was stored is not known yet)", err)
	}
	var v struct {
		Member string `json:"member"`
	}
	if json.Unmarshal(b, &v) == nil && v.Member == member {
		return cur, nil
	}
	return 0, fmt.Errorf("%s held by %q: %w", key, v.Member, errTaken)
}

// errTaken is set's answer when another member holds the key.
var errTaken = errors.New("vpeer: taken by another member")

// lapsed reports whether key, seen at rev, has not changed for Lapse. It
// runs on Run's goroutine only.
func (g *Group) lapsed(key string, rev uint64) bool {
	now := time.Now()
	o, ok := g.observed[key]
	if !ok || o.rev != rev {
		g.observed[key] = observation{rev: rev, since: now}
		return false
	}
	return now.Sub(o.since) >= g.cfg.Lapse
}

// scanSlots reads every slot: it takes free ones while this process has
// capacity, and works out the floor the log may not be trimmed past.
func (g *Group) scanSlots(ctx context.Context) {
	floor := uint64(0)
	first := true
	for slot := range g.cfg.Size {
		g.mu.Lock()
		m, here := g.members[slot]
		full := len(g.members) >= g.cfg.Capacity
		g.mu.Unlock()
		if here {
			a := m.Applied()
			if first || a < floor {
				floor, first = a, false
			}
			continue
		}
		key := slotKey(g.cfg.Name, slot)
		b, rev, err := g.cfg.Registry.Get(ctx, key)
		if err != nil && !errors.Is(err, ErrNotFound) {
			if ctx.Err() == nil {
				g.cfg.Logger.Warn("vpeer: slot not read", "slot", slot, "err", err)
			}
			floor, first = 0, false // the slot may hold a slow member
			continue
		}
		free := errors.Is(err, ErrNotFound) || g.lapsed(key, rev)
		if !free {
			var v slotValue
			_ = json.Unmarshal(b, &v)
			if first || v.Applied < floor {
				floor, first = v.Applied, false
			}
			continue
		}
		if full {
			continue
		}
		g.take(ctx, slot, rev)
		floor, first = 0, false // the new member has applied nothing yet
	}
	g.mu.Lock()
	g.floor = floor
	g.mu.Unlock()
}

// take claims slot, free at revision rev (0: never used), and starts a
// member in it.
func (g *Group) take(ctx context.Context, slot int, rev uint64) {
	g.mu.Lock()
	g.next++
	id := g.cfg.Process + "/" + strconv.Itoa(g.next)
	g.mu.Unlock()
	v, _ := json.Marshal(slotValue{Member: id, Process: g.cfg.Process})
	rev, err := g.set(ctx, slotKey(g.cfg.Name, slot), v, id, rev)
	if err != nil {
		if !errors.Is(err, errTaken) && !errors.Is(err, ErrConflict) && ctx.Err() == nil {
			g.cfg.Logger.Warn("vpeer: slot not taken", "slot", slot, "err", err)
		}
		return
	}
	delete(g.observed, slotKey(g.cfg.Name, slot))
	g.cfg.Logger.Info("vpeer: starting a member", "slot", slot, "member", id)
	m := NewMember(MemberConfig{
		ID:              id,
		Log:             g.cfg.Log,
		Machine:         g.cfg.NewMachine(),
		Reply:           g.cfg.Reply,
		Outputs:         g.emit,
		TickInterval:    g.cfg.TickInterval,
		Now:             g.cfg.Now,
		Logger:          g.cfg.Logger,
		Lease:           func() (uint64, bool) { return g.leads(id) },
		Acted:           g.acted,
		Snapshots:       g.cfg.Snapshots,
		SnapshotEvery:   g.cfg.SnapshotEvery,
		SnapshotSpacing: g.cfg.SnapshotSpacing,
		KeepSnapshots:   g.cfg.KeepSnapshots,
		Floor:           g.floorSeq,
	})
	mctx, cancel := context.WithCancel(ctx)
	gm := &groupMember{Member: m, slot: slot, rev: rev, started: time.Now(), cancel: cancel, done: make(chan struct{})}
	g.mu.Lock()
	g.members[slot] = gm
	g.mu.Unlock()
	g.wg.Go(func() {
		gm.err = m.Run(mctx)
		cancel()
		close(gm.done)
		select {
		case g.exited <- struct{}{}:
		default:
		}
	})
	g.wg.Go(func() {
		select {
		case <-m.Ready():
			g.readyOnce.Do(func() { close(g.ready) })
		case <-gm.done:
		}
	})
}

// emit hands the outputs of record seq to GroupConfig.Outputs unless a
// member here has already done so: members apply records in order, so the
// one furthest ahead is the first at each.
func (g *Group) emit(seq uint64, outs []any) {
	if g.cfg.Outputs == nil {
		return
	}
	for {
		last := g.emitted.Load()
		if seq <= last {
			return
		}
		if g.emitted.CompareAndSwap(last, seq) {
			break
		}
	}
	g.cfg.Outputs(seq, outs)
}

// keepLease renews the lease when a member here holds it, and otherwise
// takes it for a ready member here once it is free.
func (g *Group) keepLease(ctx context.Context) {
	key := leaseKey(g.cfg.Name)
	g.mu.Lock()
	l := g.lease
	g.mu.Unlock()
	// A renewal counts from when it was sent, not from when the registry
	// answered: a successor times the lapse from when it saw the renewal,
	// which is after it was sent, so this process stops acting before a
	// successor may take over however late the answer comes.
	sent := time.Now()
	if l.holder != "" {
		v, _ := json.Marshal(leaseValue{Member: l.holder, Process: g.cfg.Process})
		rev, err := g.set(ctx, key, v, l.holder, l.rev)
		g.mu.Lock()
		defer g.mu.Unlock()
		switch {
		case g.lease.holder != l.holder: // its member stopped meanwhile
		case err == nil:
			g.lease.rev, g.lease.renewed = rev, sent
		case errors.Is(err, errTaken):
			g.cfg.Logger.Warn("vpeer: lease lost", "member", l.holder)
			g.lease = lease{}
		case ctx.Err() == nil:
			g.cfg.Logger.Warn("vpeer: lease not renewed", "member", l.holder, "err", err)
		}
		return
	}
	i := slices.IndexFunc(g.local(), (*groupMember).serving)
	if i < 0 {
		return
	}
	candidate := g.local()[i]
	_, rev, err := g.cfg.Registry.Get(ctx, key)
	switch {
	case errors.Is(err, ErrNotFound):
		rev = 0
	case err != nil:
		if ctx.Err() == nil {
			g.cfg.Logger.Warn("vpeer: lease not read", "err", err)
		}
		return
	case !g.lapsed(key, rev):
		return
	}
	v, _ := json.Marshal(leaseValue{Member: candidate.ID(), Process: g.cfg.Process})
	sent = time.Now()
	rev, err = g.set(ctx, key, v, candidate.ID(), rev)
	if err != nil {
		if !errors.Is(err, errTaken) && !errors.Is(err, ErrConflict) && ctx.Err() == nil {
			g.cfg.Logger.Warn("vpeer: lease not taken", "err", err)
		}
		return
	}
	delete(g.observed, key)
	g.cfg.Logger.Info("vpeer: lease taken", "member", candidate.ID())
	g.mu.Lock()
	defer g.mu.Unlock()
	select {
	case <-candidate.done: // stopped meanwhile: let the lease lapse
	default:
		g.lease = lease{holder: candidate.ID(), rev: rev, term: rev, renewed: sent}
	}
}

// leads reports whether member id holds the lease, and its term. A holder
// that has not renewed it for almost Lapse stops acting on it: a successor
// takes it only once it has seen it unrenewed for Lapse, so the two do not
// overlap.
func (g *Group) leads(id string) (term uint64, ok bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.lease.holder != id || !(keepsExpiredLease || time.Since(g.lease.renewed) < g.cfg.Lapse-g.cfg.Heartbeat/2) {
		return 0, false
	}
	return g.lease.term, true
}

// Leading reports whether a member of this process holds the group's lease
// and may act on it: the once-only side effects of the group (DESIGN §5)
// that live outside the members, such as delivering outputs to another
// virtual peer, are done by the process for which this is true. Two
// processes may both see true for up to a heartbeat while the lease moves,
// so those side effects must be harmless when repeated.
func (g *Group) Leading() bool {
	_, ok := g.Term()
	return ok
}

// Term is the term of the lease a member of this process holds and may act
// on (Record.Term), and whether there is one: what Leading reports.
func (g *Group) Term() (uint64, bool) {
	g.mu.Lock()
	holder := g.lease.holder
	g.mu.Unlock()
	if holder == "" {
		return 0, false
	}
	return g.leads(holder)
}

// LeaseTerm is a term of the group's lease in which this process acted:
// the first and the last time it was about to append a record on the
// lease's behalf (a tick, a duty's record through OnLease). Set against
// the log, it shows whether a holder acted after its successor began,
// whether or not what it appended then reached the log.
type LeaseTerm struct {
	Term  uint64    `json:"term"`
	First time.Time `json:"first"`
	Last  time.Time `json:"last"`
}

// keptTerms is how many of its latest lease terms a process reports.
const keptTerms = 8

// acted records that this process is about to append in term.
func (g *Group) acted(term uint64, at time.Time) {
	g.mu.Lock()
	defer g.mu.Unlock()
	for i := range g.terms {
		if g.terms[i].Term == term {
			g.terms[i].Last = at
			return
		}
	}
	g.terms = append(g.terms, LeaseTerm{Term: term, First: at, Last: at})
	slices.SortFunc(g.terms, func(a, b LeaseTerm) int { return cmp.Compare(a.Term, b.Term) })
	if n := len(g.terms); n > keptTerms {
		g.terms = slices.Delete(g.terms, 0, n-keptTerms)
	}
}

func (g *Group) floorSeq() uint64 {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.floor
}

// Members returns the members running in this process, by slot.
func (g *Group) Members() []*Member {
	var ms []*Member
	for _, m := range g.local() {
		select {
		case <-m.done:
		default:
			ms = append(ms, m.Member)
		}
	}
	return ms
}

// Ready is closed once a member of this process has caught up with the log
// for the first time.
func (g *Group) Ready() <-chan struct{} { return g.ready }

// Kill stops the member named id at once, as a crash would: its slot and
// lease are left to lapse. It reports whether such a member was running
// here. It is for tests and fault drills.
func (g *Group) Kill(id string) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	for _, m := range g.members {
		if m.ID() == id {
			m.cancel()
			return true
		}
	}
	return false
}

// Query runs fn on the machine of a ready member of this process, while no
// record is being applied to it, waiting for one to be ready until ctx is
// done. fn must not modify the machine.
func (g *Group) Query(ctx context.Context, fn func(*Member)) error {
	for {
		ms := g.local()
		if i := slices.IndexFunc(ms, (*groupMember).serving); i >= 0 {
			ms[i].Query(func() { fn(ms[i].Member) })
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("vpeer: group %s: no member ready: %w", g.cfg.Name, ctx.Err())
		case <-time.After(g.cfg.Heartbeat / 10):
		}
	}
}

// WaitTime waits until a member of this process is ready and has applied
// a tick, or until ctx is done. Before then a machine that measures
// leases and deadlines from Entry.Time would count them from the zero
// time.
func (g *Group) WaitTime(ctx context.Context) error {
	for {
		var now time.Time
		if err := g.Query(ctx, func(m *Member) { now = m.Status().Time }); err != nil {
			return err
		}
		if !now.IsZero() {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("vpeer: group %s has no time yet: %w", g.cfg.Name, ctx.Err())
		case <-time.After(g.cfg.Heartbeat / 10):
		}
	}
}

// QueryLatest is Query for a reader that must see every record the log
// held when it was called: a linearizable read, as etcd's ReadIndex. It
// reads the log's last sequence number and runs fn on a ready member of
// this process once that member has applied it. Use it where a caller
// expects to see what it was told is done: the reply to a request may come
// from a member of another process while this process's members are still
// behind. It waits, until ctx is done, through a log that cannot answer
// (a replicated stream electing a leader) and through the replacement of
// the member it was waiting on.
func (g *Group) QueryLatest(ctx context.Context, fn func(*Member)) error {
	var last uint64
	for {
		var err error
		if last, err = g.cfg.Log.LastSeq(ctx); err == nil {
			break
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("vpeer: group %s: the log's last record: %w", g.cfg.Name, err)
		case <-time.After(g.cfg.Heartbeat / 10):
		}
	}
	for {
		// The member furthest ahead, waited on for a while only: it may be
		// killed, and another may get there first.
		var best *groupMember
		for _, m := range g.local() {
			if m.serving() && (best == nil || m.Applied() > best.Applied()) {
				best = m
			}
		}
		if best != nil {
			wctx, cancel := context.WithTimeout(ctx, g.cfg.Heartbeat)
			err := best.WaitApplied(wctx, last)
			cancel()
			if err == nil {
				best.Query(func() { fn(best.Member) })
				return nil
			}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("vpeer: group %s: no member of this process applied record %d: %w", g.cfg.Name, last, ctx.Err())
		case <-time.After(g.cfg.Heartbeat / 10):
		}
	}
}

// ProcessStatus is what one process reports about its part of a group.
type ProcessStatus struct {
	Group    string `json:"group"`
	Process  string `json:"process"`
	Size     int    `json:"size"`
	Capacity int    `json:"capacity"` // members this process may run
	// Lease names the member holding the lease, as the registry says.
	Lease     string         `json:"lease,omitempty"`
	LogLast   uint64         `json:"log_last"`
	Members   []MemberStatus `json:"members"`
	Snapshots []SnapshotInfo `json:"snapshots,omitempty"` // stored ones, oldest first
	// Terms are the latest lease terms in which this process acted.
	Terms []LeaseTerm `json:"terms,omitempty"`
	Error string      `json:"error,omitempty"` // what could not be read
}

// Status reports this process's members, the lease and the snapshots.
func (g *Group) Status(ctx context.Context) ProcessStatus {
	st := ProcessStatus{Group: g.cfg.Name, Process: g.cfg.Process, Size: g.cfg.Size, Capacity: g.cfg.Capacity, Members: []MemberStatus{}}
	var errs []error
	last, err := g.cfg.Log.LastSeq(ctx)
	errs = append(errs, err)
	st.LogLast = last
	if b, _, err := g.cfg.Registry.Get(ctx, leaseKey(g.cfg.Name)); err == nil {
		var v leaseValue
		_ = json.Unmarshal(b, &v)
		st.Lease = v.Member
	} else if !errors.Is(err, ErrNotFound) {
		errs = append(errs, err)
	}
	if g.cfg.Snapshots != nil {
		st.Snapshots, err = g.cfg.Snapshots.List(ctx)
		errs = append(errs, err)
	}
	for _, m := range g.local() {
		ms := m.Status()
		ms.Group, ms.Process, ms.Slot, ms.Started, ms.LogLast = g.cfg.Name, g.cfg.Process, m.slot, m.started, last
		st.Members = append(st.Members, ms)
	}
	g.mu.Lock()
	st.Terms = slices.Clone(g.terms)
	g.mu.Unlock()
	if err := errors.Join(errs...); err != nil {
		st.Error = err.Error()
	}
	return st
}

// GroupSummary puts together what the processes of one group report.
type GroupSummary struct {
	Group   string `json:"group"`
	Size    int    `json:"size"`
	Lease   string `json:"lease,omitempty"`
	LogLast uint64 `json:"log_last"`
	// Members, by slot, from every process.
	Members []MemberStatus `json:"members"`
	// Spares are processes that run no member now but could.
	Spares    []string       `json:"spares,omitempty"`
	Snapshots []SnapshotInfo `json:"snapshots,omitempty"`
	// Common is the newest snapshot point every member recorded a state
	// hash at (0: none yet), Hashes those hashes by member, and Agree
	// whether they are all equal.
	Common uint64            `json:"common,omitempty"`
	Hashes map[string]string `json:"hashes,omitempty"`
	Agree  bool              `json:"agree"`
	Errors []string          `json:"errors,omitempty"`
}

// Summarize groups the status reports of processes by group.
func Summarize(reports []ProcessStatus) []GroupSummary {
	byName := map[string]*GroupSummary{}
	var names []string
	for _, p := range reports {
		g := byName[p.Group]
		if g == nil {
			g = &GroupSummary{Group: p.Group}
			byName[p.Group] = g
			names = append(names, p.Group)
		}
		g.Size = max(g.Size, p.Size)
		g.LogLast = max(g.LogLast, p.LogLast)
		if p.Lease != "" {
			g.Lease = p.Lease
		}
		if len(p.Snapshots) > 0 && (len(g.Snapshots) == 0 || p.Snapshots[len(p.Snapshots)-1].Seq > g.Snapshots[len(g.Snapshots)-1].Seq) {
			g.Snapshots = p.Snapshots
		}
		if len(p.Members) < p.Capacity {
			g.Spares = append(g.Spares, fmt.Sprintf("%s (%d free)", p.Process, p.Capacity-len(p.Members)))
		}
		if p.Error != "" {
			g.Errors = append(g.Errors, p.Process+": "+p.Error)
		}
		g.Members = append(g.Members, p.Members...)
	}
	slices.Sort(names)
	out := make([]GroupSummary, 0, len(names))
	for _, n := range names {
		g := byName[n]
		slices.SortFunc(g.Members, func(a, b MemberStatus) int { return a.Slot - b.Slot })
		slices.Sort(g.Spares)
		g.common()
		out = append(out, *g)
	}
	return out
}

// common finds the newest snapshot point every member has a hash at.
func (g *GroupSummary) common() {
	if len(g.Members) == 0 {
		return
	}
	for _, c := range slices.Backward(g.Members[0].Checkpoints) {
		hashes := map[string]string{}
		for _, m := range g.Members {
			i := slices.IndexFunc(m.Checkpoints, func(o Checkpoint) bool { return o.Seq == c.Seq })
			if i < 0 {
				break
			}
			hashes[m.ID] = m.Checkpoints[i].Hash
		}
		if len(hashes) < len(g.Members) {
			continue
		}
		g.Common, g.Hashes, g.Agree = c.Seq, hashes, true
		for _, h := range hashes {
			g.Agree = g.Agree && h == c.Hash
		}
		return
	}
}
