package vpeer

import (
	"context"
	"errors"
	"fmt"
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
	// Logger reports records that could not be decoded, replies that could not
	// be sent and ticks that could not be appended; default slog.Default().
	Logger *slog.Logger
}

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
	interval time.Duration
	now      func() time.Time
	logger   *slog.Logger

	started atomic.Bool
	ready   chan struct{} // closed once the records present when Run started are applied

	// mu is held for writing while Machine applies a record, for reading
	// while a query runs.
	mu      sync.RWMutex
	applied atomic.Uint64

	waitMu  sync.Mutex
	waiters []waiter // callers of WaitApplied

	// Owned by the goroutine inside Run.
	tickTime time.Time // latest Tick time applied
	caughtUp uint64    // LastSeq when Run started: older records get no reply
	isReady  bool
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
		interval: cfg.TickInterval,
		now:      cfg.Now,
		logger:   cfg.Logger,
		ready:    make(chan struct{}),
	}
	if m.now == nil {
		m.now = time.Now
	}
	if m.logger == nil {
		m.logger = slog.Default()
	}
	return m
}

// Run applies the log from its first record on, sends replies and appends
// ticks until ctx is done, then returns nil. It returns an error when the log
// cannot be read. Run may be called once per Member; a restarted member is a
// new Member with a fresh StateMachine.
func (m *Member) Run(ctx context.Context) error {
	if m.log == nil || m.machine == nil {
		return errors.New("vpeer: member needs a Log and a Machine")
	}
	if !m.started.CompareAndSwap(false, true) {
		return errors.New("vpeer: member already run")
	}
	last, err := m.log.LastSeq(ctx)
	if err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return fmt.Errorf("vpeer: member: last sequence of the log: %w", err)
	}
	m.caughtUp = last
	m.markReady(0)

	readCtx, stop := context.WithCancel(ctx)
	defer stop()
	var wg sync.WaitGroup
	if m.interval > 0 {
		wg.Go(func() { m.tick(readCtx) })
	}
	err = m.log.Read(readCtx, m.applied.Load()+1, m.apply)
	stop()
	wg.Wait()
	if ctx.Err() != nil {
		return nil
	}
	return fmt.Errorf("vpeer: member: read log after %d: %w", m.applied.Load(), err)
}

// apply applies one record; it runs on Run's goroutine only.
func (m *Member) apply(r Record) error {
	if prev := m.applied.Load(); r.Seq <= prev {
		return fmt.Errorf("record %d after %d: log out of order", r.Seq, prev)
	}
	if r.Err != nil {
		m.logger.Warn("vpeer: skipping a record that cannot be decoded", "seq", r.Seq, "err", r.Err)
		m.advance(r.Seq)
		return nil
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

	m.mu.Lock()
	reply := m.machine.Apply(e)
	m.mu.Unlock()

	// Records from before Run started were answered when they were new.
	if r.Seq > m.caughtUp && len(reply) > 0 && r.ReplyTo != "" && m.reply != nil {
		if err := m.reply(r.ReplyTo, reply); err != nil {
			m.logger.Warn("vpeer: reply not sent", "seq", r.Seq, "subject", r.ReplyTo, "err", err)
		}
	}
	m.advance(r.Seq)
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

// tick appends a Tick record every interval, stamped with the clock
// truncated to the interval; it runs until ctx is done.
func (m *Member) tick(ctx context.Context) {
	t := time.NewTicker(m.interval)
	defer t.Stop()
	var last time.Time
	for {
		if at := truncate(m.now(), m.interval); !at.Equal(last) {
			_, err := m.log.Append(ctx, Record{ID: tickID(at), Tick: at})
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

func truncate(t time.Time, d time.Duration) time.Time {
	ns := t.UnixNano()
	return time.Unix(0, ns-ns%int64(d)).UTC()
}

// tickID names the Tick for time at, so that two holders ticking at the
// same time append it once.
func tickID(at time.Time) string {
	return "tick-" + strconv.FormatInt(at.UnixNano(), 10)
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

// Query runs fn while no record is being applied, so fn may read the
// StateMachine; fn must not modify it. Queries run concurrently with one
// another. Query must not be called from inside Apply or fn.
func (m *Member) Query(fn func()) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	fn()
}
