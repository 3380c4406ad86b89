// Package schedtest runs the scheduler for the tests of what surrounds it
// (the gateway, the lease holder's duties, the server): Peer, scheduler
// members over vpeer's in-memory log with no NATS server; and the
// porcupine model of the scheduler's work and result operations with a
// simulated volunteer, to check what volunteers saw for linearizability.
package schedtest

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/momonga-project/momonga/project/sched"
	"github.com/momonga-project/momonga/vpeer"
	"github.com/momonga-project/momonga/vpeer/vpeertest"
)

// T0 is the time of the first tick a Peer puts in its log.
var T0 = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

// Config configures a Peer.
type Config struct {
	Sched   sched.Config
	Members int // default 1
	// Reply receives the members' replies; default the Peer's Inboxes.
	Reply func(subject string, data []byte) error
	// Outputs receives the scheduler's outputs, once per record.
	Outputs func(seq uint64, outs []any)
}

// Peer is members of the scheduler's virtual peer applying one in-memory
// log. It is a duties.Scheduler and the gateway's log: Append, Request,
// Leading, Term, Query.
type Peer struct {
	*vpeer.MemLog
	Inboxes *vpeertest.Inboxes
	Members []*vpeertest.RunningMember
	leading atomic.Bool
	term    atomic.Uint64
	asked   atomic.Int64 // calls of Term
	emitted atomic.Uint64
	outputs func(seq uint64, outs []any)
}

// Start runs a Peer until the test ends; it holds the lease (SetLeading)
// and its log starts with a tick at T0.
func Start(t testing.TB, cfg Config) *Peer {
	t.Helper()
	p := &Peer{MemLog: vpeer.NewMemLog(), Inboxes: &vpeertest.Inboxes{}, outputs: cfg.Outputs}
	p.SetLeading(true)
	if cfg.Reply == nil {
		cfg.Reply = p.Inboxes.Reply
	}
	if cfg.Members <= 0 {
		cfg.Members = 1
	}
	p.Tick(t, T0)
	for range cfg.Members {
		m := vpeertest.StartMachine(t, vpeer.MemberConfig{Log: p.MemLog, Machine: sched.New(cfg.Sched), Reply: cfg.Reply, Outputs: p.emit})
		vpeertest.WaitReady(t, m)
		p.Members = append(p.Members, m)
	}
	return p
}

// emit hands on each record's outputs once, as a vpeer.Group does.
func (p *Peer) emit(seq uint64, outs []any) {
	if p.outputs == nil {
		return
	}
	for {
		last := p.emitted.Load()
		if seq <= last {
			return
		}
		if p.emitted.CompareAndSwap(last, seq) {
			break
		}
	}
	p.outputs(seq, outs)
}

// Tick appends a tick at time at: time passes for the scheduler.
func (p *Peer) Tick(t testing.TB, at time.Time) uint64 {
	t.Helper()
	return vpeertest.Append(t, p.MemLog, vpeer.Record{Tick: at})
}

// Request appends r with an inbox of its own and returns the first reply.
func (p *Peer) Request(ctx context.Context, r vpeer.Record) ([]byte, error) {
	return vpeertest.Requests{Log: p.MemLog, Inboxes: p.Inboxes}.Request(ctx, r)
}

// SetLeading says whether this process holds the lease; taking it when
// it did not begins a new term.
func (p *Peer) SetLeading(v bool) {
	if v && !p.leading.Load() {
		p.term.Add(1)
	}
	p.leading.Store(v)
}

// Term is the term SetLeading began last, and whether it still holds.
func (p *Peer) Term() (uint64, bool) {
	p.asked.Add(1)
	if !p.leading.Load() {
		return 0, false
	}
	return p.term.Load(), true
}

// TermAsked is how many times Term was called: a test waits for it to
// know the process under test has looked at the lease.
func (p *Peer) TermAsked() int64 { return p.asked.Load() }

// Leading reports what SetLeading last said.
func (p *Peer) Leading() bool { return p.leading.Load() }

// Query runs fn on the first member's scheduler once it has applied every
// record in the log.
func (p *Peer) Query(ctx context.Context, fn func(*sched.Machine)) error {
	last, err := p.LastSeq(ctx)
	if err != nil {
		return err
	}
	m := p.Members[0]
	if err := m.WaitApplied(ctx, last); err != nil {
		return err
	}
	m.Query(func() { fn(m.Machine().(*sched.Machine)) })
	return nil
}
