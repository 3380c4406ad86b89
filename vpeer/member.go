package vpeer

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// MemberConfig configures a Member.
type MemberConfig struct {
	Log     Log
	Machine StateMachine
	// Reply sends a reply computed by Machine to the subject the record named.
	// Nil sends nothing. It is called between two Applies, so it should not
	// block (a NATS publish does not); an error is logged and forgotten, since
	// the requester retries.
	Reply func(subject string, data []byte) error
	// TickInterval > 0 makes this member append a Tick record at this
	// interval. It is meant for the lease holder (DESIGN §5); with one member
	// that member holds the lease. Several members ticking from the same
	// clock do not double a tick, because a Tick's ID is its time.
	TickInterval time.Duration
	// Now is the clock Tick records are stamped from; default time.Now. It is
	// never consulted while applying records.
	Now func() time.Time
	// Outputs, when set and Machine is an Emitter, is called with the
	// outputs of each record whose Apply produced any, in log order, after
	// the machine is unlocked and before the next record is applied. It
	// must not block, nor keep outs: the machine reuses it.
	Outputs func(seq uint64, outs []any)
	// Logger reports records that could not be decoded, replies that could not
	// be sent and ticks that could not be appended; default slog.Default().
	Logger *slog.Logger

	// ID names the member in logs and status reports.
	ID string
	// Lease reports whether this member holds its group's lease and may act
	// on it, and the lease's term: only then does it append ticks (carrying
	// the term, Record.Term), store snapshots and trim the log. Nil means
	// always, in term 0, for a member on its own.
	Lease func() (term uint64, held bool)
	// Acted, when set, is told of every append the member is about to make
	// on the lease's behalf (a tick), with the term and the time: a group
	// keeps them for an audit of who acted when (ProcessStatus.Terms).
	Acted func(term uint64, at time.Time)

	// Snapshots is where the member restores from when it starts and where,
	// as lease holder, it stores snapshots; nil for none: the member then
	// replays the whole log.
	Snapshots SnapshotStore
	// SnapshotEvery > 0 makes every record whose sequence number is a
	// multiple of it a snapshot point, beside those asked for with
	// MarkSnapshot. At a snapshot point every member records the hash of its
	// state (Status().Checkpoints) and the lease holder stores a snapshot.
	SnapshotEvery uint64
	// SnapshotSpacing > 0 spaces the periodic snapshot points by the size
	// of the state as well: a multiple of SnapshotEvery is a snapshot point
	// only when at least B/SnapshotSpacing records were applied since the
	// last point, B being the size of a snapshot of the state now (the
	// machine's fsm.Sizer estimate) or, for a machine that cannot tell, of
	// the last one. Encoding the state costs in proportion to its size and
	// holds up applying, so with a fixed interval a large state made every
	// record pay for a share of it (a scheduler holding 200,000 tasks spent
	// a quarter of its CPU hashing snapshots every 10,000 records); spaced
	// so, snapshots cost each record a bounded share of the work whatever
	// the state's size, and a replacement replays no more records than its
	// snapshot's size allows. The points depend only on the log and the
	// states it leads to, so every member takes the same ones.
	SnapshotSpacing uint64
	// KeepSnapshots is how many stored snapshots the lease holder keeps;
	// default 2, so that a member finding the newest corrupt falls back to
	// the one before. The log is trimmed behind the oldest one kept.
	KeepSnapshots int
	// Floor, when set, returns the lowest sequence number any member of the
	// group has applied: the log is never trimmed past it, so a slow member
	// does not lose its next records. Nil: this member's own.
	Floor func() uint64
	// StartTimeout bounds each listing of the snapshots and each reading of
	// one when the member starts; default DefaultStartTimeout. A listing
	// that does not end is tried again, and a snapshot that cannot be read
	// gives way to an older one.
	StartTimeout time.Duration
}

// DefaultStartTimeout is MemberConfig.StartTimeout's default. On a loaded
// cluster a listing of the snapshots (a watch of their store) was seen to
// wait for an answer that never came, leaving a member that never became
// ready.
const DefaultStartTimeout = 30 * time.Second

// listTries is how many times a member lists the snapshots before it
// replays the log instead.
const listTries = 3

// keptFenced is how many fenced records a member lists in its status.
const keptFenced = 64

// keptCheckpoints is how many recent state hashes a member remembers.
const keptCheckpoints = 8

// A Member is one replica of a virtual peer: it applies every record of the
// log to its StateMachine in order, sends the replies for new records and,
// when configured to, appends Tick records (DESIGN §5).
//
// Entry.Time comes from the Tick records in the log, so replaying the log
// gives every member, and every restart, the same entries.
type Member struct {
	log      Log
	machine  StateMachine
	reply    func(subject string, data []byte) error
	emitter  Emitter // machine, when it has outputs and someone takes them
	outputs  func(seq uint64, outs []any)
	interval time.Duration
	now      func() time.Time
	logger   *slog.Logger
	id       string
	lease    func() (uint64, bool)
	acted    func(uint64, time.Time)
	store    SnapshotStore
	every    uint64
	spacing  uint64
	keep     int
	floor    func() uint64

	started atomic.Bool
	ready   chan struct{} // closed once the records present when Run started are applied

	// mu is held for writing while Machine applies a record, for reading
	// while a query runs.
	mu      sync.RWMutex
	applied atomic.Uint64

	waitMu  sync.Mutex
	waiters []waiter // callers of WaitApplied

	statusMu    sync.Mutex
	checkpoints []Checkpoint  // the latest keptCheckpoints, oldest first
	restored    *SnapshotInfo // the snapshot Run started from
	stored      *SnapshotInfo // the latest snapshot this member stored
	skipped     []uint64      // the latest records skipped as undecodable
	fenced      []uint64      // the latest records fenced off as a past lease holder's
	timeNs      atomic.Int64  // Entry.Time of the last record applied, unix ns; 0 for zero

	storeMu sync.Mutex
	storing bool         // a goroutine is storing snapshots
	pending *snapshotJob // the next one it stores

	// Owned by Run and the Log.Read it calls, which hands records to apply
	// one at a time (not necessarily on Run's goroutine).
	tickTime time.Time // latest Tick time applied
	term     uint64    // highest lease term of a record applied (Record.Term)
	caughtUp uint64    // LastSeq when Run started: older records get no reply
	// The last snapshot point and the size of the state there
	// (SnapshotSpacing).
	lastPoint uint64
	lastSize  int
	// The outputs and replies of the record being applied.
	outs    []any
	replies []Request
	isReady bool
	startTO time.Duration   // MemberConfig.StartTimeout
	runCtx  context.Context // Run's, for the work it starts in the background
	bg      sync.WaitGroup  // that work
}

type waiter struct {
	seq  uint64
	done chan struct{}
}

// NewMember returns a member for cfg; Run starts it.
func NewMember(cfg MemberConfig) *Member {
	m := &Member{
		log:      cfg.Log,
		machine:  cfg.Machine,
		reply:    cfg.Reply,
		outputs:  cfg.Outputs,
		interval: cfg.TickInterval,
		now:      cfg.Now,
		logger:   cfg.Logger,
		id:       cfg.ID,
		lease:    cfg.Lease,
		acted:    cfg.Acted,
		store:    cfg.Snapshots,
		every:    cfg.SnapshotEvery,
		spacing:  cfg.SnapshotSpacing,
		keep:     cfg.KeepSnapshots,
		floor:    cfg.Floor,
		startTO:  cfg.StartTimeout,
		ready:    make(chan struct{}),
	}
	if m.now == nil {
		m.now = time.Now
	}
	if e, ok := cfg.Machine.(Emitter); ok && cfg.Outputs != nil {
		m.emitter = e
	}
	if m.logger == nil {
		m.logger = slog.Default()
	}
	if m.id != "" {
		m.logger = m.logger.With("member", m.id)
	}
	if m.lease == nil {
		m.lease = func() (uint64, bool) { return 0, true }
	}
	if m.acted == nil {
		m.acted = func(uint64, time.Time) {}
	}
	if m.keep <= 0 {
		m.keep = 2
	}
	if m.startTO <= 0 {
		m.startTO = DefaultStartTimeout
	}
	return m
}

// Run restores the newest good snapshot, if there is a store, applies the
// log from the record after it on, sends replies, appends ticks and stores
// snapshots until ctx is done, then returns nil. It returns an error when the
// log cannot be read, or lacks records that no snapshot covers. Run may be
// called once per Member; a restarted member is a new Member with a fresh
// StateMachine.
func (m *Member) Run(ctx context.Context) error {
	if m.log == nil || m.machine == nil {
		return errors.New("vpeer: member needs a Log and a Machine")
	}
	if !m.started.CompareAndSwap(false, true) {
		return errors.New("vpeer: member already run")
	}
	var snaps []SnapshotInfo
	if m.store != nil {
		var err error
		for try := 1; ; try++ {
			lctx, cancel := context.WithTimeout(ctx, m.startTO)
			snaps, err = m.store.List(lctx)
			cancel()
			if err == nil || ctx.Err() != nil || try == listTries {
				break
			}
			m.logger.Warn("vpeer: snapshots not listed; trying again", "try", try, "err", err)
		}
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			// The log may still hold everything; if not, the first record
			// read says so.
			m.logger.Warn("vpeer: snapshots cannot be listed; replaying the log", "err", err)
		}
	}
	// Read after the list, so that every snapshot listed covers records
	// that are in the log now; a newer one comes from another log.
	last, err := m.log.LastSeq(ctx)
	if err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return fmt.Errorf("vpeer: member: last sequence of the log: %w", err)
	}
	m.caughtUp = last
	m.restore(ctx, snaps, last)
	m.markReady(m.applied.Load())

	readCtx, stop := context.WithCancel(ctx)
	defer stop()
	m.runCtx = readCtx
	if m.interval > 0 {
		m.bg.Go(func() { m.tick(readCtx) })
	}
	err = m.log.Read(readCtx, m.applied.Load()+1, m.apply)
	stop()
	m.bg.Wait()
	if ctx.Err() != nil {
		return nil
	}
	return fmt.Errorf("vpeer: member: read log after %d: %w", m.applied.Load(), err)
}

// restore restores the newest snapshot that is whole and covers no more
// than the log holds, falling back to older ones; with none, the member
// replays the log from its start.
func (m *Member) restore(ctx context.Context, snaps []SnapshotInfo, last uint64) {
	for i := len(snaps) - 1; i >= 0; i-- {
		s := snaps[i]
		if s.Seq > last {
			m.logger.Warn("vpeer: snapshot ahead of the log ignored", "snapshot", s.Seq, "log", last)
			continue
		}
		info, size, err := m.restoreOne(ctx, s.Seq)
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			m.logger.Warn("vpeer: snapshot refused; trying an older one", "snapshot", s.Seq, "err", err)
			continue
		}
		m.tickTime, m.term = info.Time, info.Term
		m.storeTime(info.Time)
		m.applied.Store(info.Seq)
		m.lastPoint, m.lastSize = info.Seq, size
		m.statusMu.Lock()
		m.restored = &info
		m.checkpoints = append(m.checkpoints, Checkpoint{Seq: info.Seq, Hash: info.Hash})
		m.statusMu.Unlock()
		m.logger.Info("vpeer: restored snapshot", "seq", info.Seq, "bytes", info.Size)
		return
	}
	if len(snaps) > 0 {
		m.logger.Warn("vpeer: no usable snapshot; replaying the whole log")
	}
}

// restoreOne reads, checks and restores the snapshot stored under seq, and
// returns the size of the machine's state in it.
func (m *Member) restoreOne(ctx context.Context, seq uint64) (SnapshotInfo, int, error) {
	ctx, cancel := context.WithTimeout(ctx, m.startTO)
	defer cancel()
	r, err := m.store.Open(ctx, seq)
	if err != nil {
		return SnapshotInfo{}, 0, err
	}
	// Read whole before restoring anything: the checksum is at the end.
	data, err := io.ReadAll(r)
	r.Close()
	if err != nil {
		return SnapshotInfo{}, 0, err
	}
	info, state, err := decodeSnapshot(data)
	if err != nil {
		return info, 0, err
	}
	if info.Seq != seq {
		return info, 0, fmt.Errorf("stored under %d, covers %d", seq, info.Seq)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := m.machine.Restore(bytes.NewReader(state)); err != nil {
		return info, 0, err
	}
	return info, len(state), nil
}

// spaced reports whether record seq is far enough from the last snapshot
// point to be a periodic one (SnapshotSpacing).
func (m *Member) spaced(seq uint64) bool {
	if m.spacing == 0 {
		return true
	}
	size := m.lastSize
	if s, ok := m.machine.(Sizer); ok {
		size = s.SnapshotSize()
	}
	return seq-m.lastPoint >= uint64(max(size, 0))/m.spacing
}

// apply applies one record; Log.Read calls it one record at a time.
func (m *Member) apply(r Record) error {
	switch prev := m.applied.Load(); {
	case r.Seq <= prev:
		return fmt.Errorf("record %d after %d: log out of order", r.Seq, prev)
	case r.Seq > prev+1:
		return fmt.Errorf("record %d follows %d: the log was trimmed past every usable snapshot", r.Seq, prev)
	}
	if r.Err != nil {
		m.logger.Warn("vpeer: skipping a record that cannot be decoded", "seq", r.Seq, "err", r.Err)
		m.statusMu.Lock()
		m.skipped = append(m.skipped, r.Seq)
		if n := len(m.skipped); n > keptCheckpoints {
			m.skipped = slices.Delete(m.skipped, 0, n-keptCheckpoints)
		}
		m.statusMu.Unlock()
		m.done(r.Seq, false)
		return nil
	}
	if r.Snapshot {
		m.done(r.Seq, true)
		return nil
	}
	if r.Term != 0 {
		if r.Term < m.term {
			// Appended on a lease that has passed to another holder since
			// (a record held up in a broken link, or a holder that did not
			// know it had lost the lease): every member fences it off, as
			// every member has seen the newer term before it.
			m.logger.Debug("vpeer: record of a past lease term fenced off", "seq", r.Seq, "term", r.Term, "current", m.term)
			m.statusMu.Lock()
			m.fenced = append(m.fenced, r.Seq)
			if n := len(m.fenced); n > keptFenced {
				m.fenced = slices.Delete(m.fenced, 0, n-keptFenced)
			}
			m.statusMu.Unlock()
			m.done(r.Seq, false)
			return nil
		}
		m.term = r.Term
	}
	e := Entry{Seq: r.Seq, Payload: r.Payload}
	if !r.Tick.IsZero() {
		// Normalised so that the Time handed to Apply does not depend on how
		// the log stores times (location, monotonic reading).
		if t := time.Unix(0, r.Tick.UnixNano()).UTC(); t.After(m.tickTime) {
			m.tickTime = t
		}
		e.Tick = true
		e.Payload = nil
	}
	e.Time = m.tickTime

	// Records from before Run started were answered when they were new.
	answer := r.Seq > m.caughtUp && m.reply != nil
	m.replies = m.replies[:0]
	m.outs = m.outs[:0]
	m.mu.Lock()
	if len(r.Batch) == 0 {
		m.applyOne(e, r.ReplyTo, answer)
	} else {
		for _, q := range r.Batch {
			e.Payload = q.Payload
			m.applyOne(e, q.ReplyTo, answer)
		}
	}
	m.mu.Unlock()
	m.storeTime(e.Time)
	if len(m.outs) > 0 {
		m.outputs(r.Seq, m.outs)
	}
	for _, q := range m.replies {
		if err := m.reply(q.ReplyTo, q.Payload); err != nil {
			m.logger.Warn("vpeer: reply not sent", "seq", r.Seq, "subject", q.ReplyTo, "err", err)
		}
	}
	clear(m.outs) // no reference to this record's outputs and replies stays behind
	clear(m.replies)
	m.done(r.Seq, false)
	return nil
}

// applyOne applies one entry under the machine's lock, keeping its outputs
// and, when answer is set, its reply for replyTo until the lock is
// released.
func (m *Member) applyOne(e Entry, replyTo string, answer bool) {
	reply := m.machine.Apply(e)
	if m.emitter != nil {
		// Copied: the machine reuses its list at the next Apply.
		m.outs = append(m.outs, m.emitter.Outputs()...)
	}
	if answer && len(reply) > 0 && replyTo != "" {
		m.replies = append(m.replies, Request{ReplyTo: replyTo, Payload: reply})
	}
}

// done finishes record seq: a snapshot point when asked for or when seq
// falls on one, then applied.
func (m *Member) done(seq uint64, snapshot bool) {
	if snapshot || m.every > 0 && seq%m.every == 0 && m.spaced(seq) {
		m.checkpoint(seq)
	}
	m.advance(seq)
}

func (m *Member) storeTime(t time.Time) {
	if !t.IsZero() {
		m.timeNs.Store(t.UnixNano())
	}
}

// checkpoint records the hash of the state at seq and, on the lease
// holder, stores a snapshot in the background. Taking the machine's
// snapshot holds up applying, not queries.
func (m *Member) checkpoint(seq uint64) {
	var buf bytes.Buffer
	m.mu.RLock()
	err := m.machine.Snapshot(&buf)
	m.mu.RUnlock()
	if err != nil {
		m.logger.Error("vpeer: snapshot failed", "seq", seq, "err", err)
		return
	}
	m.lastPoint, m.lastSize = seq, buf.Len()
	at, term := m.tickTime, m.term
	hash := stateHash(at, term, buf.Bytes())
	m.statusMu.Lock()
	m.checkpoints = append(m.checkpoints, Checkpoint{Seq: seq, Hash: hex.EncodeToString(hash[:])})
	if n := len(m.checkpoints); n > keptCheckpoints {
		m.checkpoints = slices.Delete(m.checkpoints, 0, n-keptCheckpoints)
	}
	m.statusMu.Unlock()
	if m.store == nil || !m.leading() {
		return
	}
	job := &snapshotJob{seq: seq, at: at, term: term, hash: hash, state: buf.Bytes()}
	m.storeMu.Lock()
	defer m.storeMu.Unlock()
	if m.storing {
		// Only the newest waits: an older one would be dropped soon anyway.
		m.pending = job
		return
	}
	m.storing = true
	m.bg.Go(func() { m.storeSnapshots(job) })
}

// storeSnapshots stores job, then the newest snapshot that came due
// meanwhile, until none is left. A snapshot that fails to be stored (a
// store timing out under load) is tried again, a few times, unless a newer
// one is due.
func (m *Member) storeSnapshots(job *snapshotJob) {
	const tries = 4
	failures := 0
	for job != nil {
		err := m.storeSnapshot(m.runCtx, job)
		if m.runCtx.Err() != nil {
			return
		}
		retry := false
		if err != nil {
			failures++
			m.logger.Warn("vpeer: snapshot not stored", "seq", job.seq, "try", failures, "err", err)
			if retry = failures < tries && m.leading(); retry {
				select {
				case <-m.runCtx.Done():
					return
				case <-time.After(time.Duration(failures) * time.Second):
				}
			}
		}
		m.storeMu.Lock()
		switch {
		case m.pending != nil:
			job, m.pending, failures = m.pending, nil, 0
		case !retry:
			job = nil
		}
		m.storing = job != nil
		m.storeMu.Unlock()
	}
}

// snapshotJob is a snapshot to store: the machine's snapshot at seq.
type snapshotJob struct {
	seq   uint64
	at    time.Time
	term  uint64
	hash  [sha256.Size]byte
	state []byte
}

// storeSnapshot compresses and stores a snapshot, drops the ones no longer
// kept and trims the log behind the oldest one kept.
func (m *Member) storeSnapshot(ctx context.Context, job *snapshotJob) error {
	var data bytes.Buffer
	if err := encodeSnapshot(&data, job.seq, job.at, job.term, job.hash, job.state); err != nil {
		return err
	}
	info := SnapshotInfo{Seq: job.seq, Time: job.at, Term: job.term, Hash: hex.EncodeToString(job.hash[:]), Size: int64(data.Len()), Stored: m.now().UTC()}
	if err := m.store.Put(ctx, info, &data); err != nil {
		return err
	}
	snaps, err := m.store.List(ctx)
	if err != nil {
		return err
	}
	// The store knows how many bytes it keeps.
	if i := slices.IndexFunc(snaps, func(s SnapshotInfo) bool { return s.Seq == info.Seq }); i >= 0 {
		info.Size = snaps[i].Size
	}
	m.statusMu.Lock()
	m.stored = &info
	m.statusMu.Unlock()
	m.logger.Debug("vpeer: snapshot stored", "seq", job.seq, "bytes", info.Size)

	if len(snaps) > m.keep {
		for _, s := range snaps[:len(snaps)-m.keep] {
			if err := m.store.Delete(ctx, s.Seq); err != nil {
				return err
			}
		}
		snaps = snaps[len(snaps)-m.keep:]
	}
	t, ok := m.log.(Trimmer)
	if !ok || len(snaps) < m.keep {
		// With fewer snapshots than it keeps, the log is the fallback.
		return nil
	}
	if !m.leading() {
		return nil // the lease moved while this snapshot was stored
	}
	floor := m.applied.Load()
	if m.floor != nil {
		floor = m.floor()
	}
	// Members restoring snaps[0] replay from the record after it.
	if upTo := min(snaps[0].Seq, floor); upTo > 0 {
		return t.Trim(ctx, upTo)
	}
	return nil
}

// advance records seq as applied and wakes whoever waits for it.
func (m *Member) advance(seq uint64) {
	m.applied.Store(seq)
	m.markReady(seq)
	m.waitMu.Lock()
	defer m.waitMu.Unlock()
	m.waiters = slices.DeleteFunc(m.waiters, func(w waiter) bool {
		if w.seq <= seq {
			close(w.done)
			return true
		}
		return false
	})
}

func (m *Member) markReady(seq uint64) {
	if !m.isReady && seq >= m.caughtUp {
		m.isReady = true
		close(m.ready)
	}
}

// leading reports whether the member may act on its group's lease.
func (m *Member) leading() bool {
	_, ok := m.lease()
	return ok
}

// tick appends a Tick record every interval while the member leads,
// stamped with the clock truncated to the interval and the lease's term;
// it runs until ctx is done. Each append waits for the log at most
// tickTimeout: a publish lost with a broken link is never answered, and a
// holder stuck on it would tick no more.
func (m *Member) tick(ctx context.Context) {
	// Checked more often than the interval when that is long, so that a
	// member that takes the lease over ticks soon, not an interval later.
	t := time.NewTicker(min(m.interval, 100*time.Millisecond))
	defer t.Stop()
	var last time.Time
	for {
		at := truncate(m.now(), m.interval)
		if term, ok := m.lease(); ok && !at.Equal(last) {
			m.acted(term, time.Now())
			actx, cancel := context.WithTimeout(ctx, max(2*m.interval, minTickTimeout))
			_, err := m.log.Append(actx, Record{ID: tickID(at, term), Tick: at, Term: term})
			cancel()
			switch {
			case err == nil || errors.Is(err, ErrDuplicate):
				last = at
			case ctx.Err() != nil:
				return
			default:
				m.logger.Warn("vpeer: tick not appended", "time", at, "err", err)
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// minTickTimeout is the least time a tick's append waits for the log.
const minTickTimeout = 2 * time.Second

func truncate(t time.Time, d time.Duration) time.Time {
	ns := t.UnixNano()
	return time.Unix(0, ns-ns%int64(d)).UTC()
}

// tickID names the Tick for time at in a lease's term: a holder that
// appends it again (a retry) appends it once, and two members on their own
// (term 0) ticking from one clock append it once. The ticks of different
// holders differ, so that an audit of the log sees each holder's
// (LateAppends), rather than a late holder's hidden as a duplicate of its
// successor's.
func tickID(at time.Time, term uint64) string {
	if term == 0 {
		return "tick-" + strconv.FormatInt(at.UnixNano(), 10)
	}
	return "tick-" + strconv.FormatUint(term, 10) + "-" + strconv.FormatInt(at.UnixNano(), 10)
}

// Ready is closed once the member has applied every record that was in the
// log when Run started.
func (m *Member) Ready() <-chan struct{} { return m.ready }

// Applied is the sequence number of the last record applied (or skipped as
// undecodable).
func (m *Member) Applied() uint64 { return m.applied.Load() }

// WaitApplied returns once the record with sequence number seq has been
// applied and its reply sent, or with an error when ctx is done first.
func (m *Member) WaitApplied(ctx context.Context, seq uint64) error {
	m.waitMu.Lock()
	if m.applied.Load() >= seq {
		m.waitMu.Unlock()
		return nil
	}
	w := waiter{seq: seq, done: make(chan struct{})}
	m.waiters = append(m.waiters, w)
	m.waitMu.Unlock()

	select {
	case <-w.done:
		return nil
	case <-ctx.Done():
		m.waitMu.Lock()
		m.waiters = slices.DeleteFunc(m.waiters, func(o waiter) bool { return o.done == w.done })
		m.waitMu.Unlock()
		return fmt.Errorf("vpeer: wait for record %d (applied %d): %w", seq, m.applied.Load(), ctx.Err())
	}
}

// ID is the member's name, from MemberConfig.ID.
func (m *Member) ID() string { return m.id }

// Machine is the StateMachine the member applies the log to. Read it only
// inside Query.
func (m *Member) Machine() StateMachine { return m.machine }

// MemberStatus is what a member reports about itself; a Group adds where
// it runs.
type MemberStatus struct {
	Group   string    `json:"group,omitempty"`
	ID      string    `json:"id"`
	Process string    `json:"process,omitempty"`
	Slot    int       `json:"slot"`
	Started time.Time `json:"started,omitzero"`
	Applied uint64    `json:"applied"`
	LogLast uint64    `json:"log_last"` // the log's last sequence number when asked; 0 if unknown
	Ready   bool      `json:"ready"`
	Leading bool      `json:"leading"`
	// Time is Entry.Time of the last record applied.
	Time        time.Time     `json:"time,omitzero"`
	Checkpoints []Checkpoint  `json:"checkpoints,omitempty"`
	Restored    *SnapshotInfo `json:"restored,omitempty"` // the snapshot it started from; nil: the whole log replayed
	Stored      *SnapshotInfo `json:"stored,omitempty"`   // the latest snapshot it stored
	// Skipped lists the latest records the member skipped because they
	// could not be decoded (every member skips the same ones).
	Skipped []uint64 `json:"skipped,omitempty"`
	// Fenced lists the latest records the member did not apply because they
	// were appended on a past lease term (Record.Term): every member fences
	// the same ones.
	Fenced []uint64 `json:"fenced,omitempty"`
}

// Status reports the member's progress.
func (m *Member) Status() MemberStatus {
	st := MemberStatus{ID: m.id, Applied: m.applied.Load(), Leading: m.leading()}
	select {
	case <-m.ready:
		st.Ready = true
	default:
	}
	if ns := m.timeNs.Load(); ns != 0 {
		st.Time = time.Unix(0, ns).UTC()
	}
	m.statusMu.Lock()
	defer m.statusMu.Unlock()
	st.Checkpoints = slices.Clone(m.checkpoints)
	st.Restored = m.restored
	st.Stored = m.stored
	st.Skipped = slices.Clone(m.skipped)
	st.Fenced = slices.Clone(m.fenced)
	return st
}

// Query runs fn while no record is being applied, so fn may read the
// StateMachine; fn must not modify it. Queries run concurrently with one
// another. Query must not be called from inside Apply or fn.
func (m *Member) Query(fn func()) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	fn()
}
