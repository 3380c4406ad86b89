// Package duties is what the scheduler's lease holder does once for the
// whole group (DESIGN §5): it compares outputs that are not byte for byte
// equal (project/validator), forwards credit from the scheduler's outbox to
// the accounting virtual peer and acknowledges it, and deletes checkpoints
// no task needs. They run in every process that runs members of the
// scheduler, and act only while a member of that process holds the lease,
// so they follow the lease wherever it goes; each is harmless when repeated
// or when two holders overlap for a moment. One more reaction runs in every
// process, lease or not: closing the connections of a revoked host on this
// process's NATS server.
//
// The duties learn what happened from the scheduler's outputs (Outputs,
// given to vpeer.GroupConfig.Outputs), and find what is left to do in the
// scheduler's state, so a new lease holder picks up where the last one
// stopped. They see the virtual peers only through the small interfaces
// below: tests run them on vpeer's in-memory log.
package duties

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/momonga-project/momonga/internal/tick"
	"github.com/momonga-project/momonga/project/sched"
	"github.com/momonga-project/momonga/project/validator"
	"github.com/momonga-project/momonga/vpeer"
	wu "github.com/momonga-project/momonga/workunits"
)

// Log is a virtual peer's log as the duties write to it.
type Log interface {
	Append(ctx context.Context, r vpeer.Record) (uint64, error)
	// Request appends r with an inbox of its own as ReplyTo and returns the
	// first member's reply; vpeer.ErrDuplicate when r's ID is in the log
	// already (jetlog.Requests, vpeertest.Requests).
	Request(ctx context.Context, r vpeer.Record) ([]byte, error)
}

// Scheduler is the scheduler's virtual peer as this process takes part in
// it.
type Scheduler interface {
	Log
	// Leading reports whether a member of this process holds the lease.
	Leading() bool
	// Term is the term of the lease this process holds, and whether it
	// holds one: a lease lost and taken again has a new term.
	Term() (uint64, bool)
	// Query runs fn on the machine of a ready member of this process; fn
	// must not change it.
	Query(ctx context.Context, fn func(*sched.Machine)) error
}

// Blobs is the project's blob store: outputs to compare, checkpoints to
// delete.
type Blobs interface {
	Size(ctx context.Context, h wu.Hash) (int64, bool, error)
	Get(ctx context.Context, h wu.Hash) ([]byte, error)
	Delete(ctx context.Context, h wu.Hash) error
}

// Revoker closes the connections of revoked hosts (the auth callout of a
// secured server).
type Revoker interface {
	Revoked(hosts []string)
}

// Notifier tells idle hosts that work waits for them (a push on each
// host's push subject). It must not block.
type Notifier interface {
	WorkWaiting(hosts []string)
}

// Config says where the duties act.
type Config struct {
	Sched Scheduler
	// Acct is the accounting peer's log: credit goes there.
	Acct Log
	// Blobs, when set, lets the lease holder compare outputs and delete
	// old checkpoints.
	Blobs Blobs
	// Revoker, when set, is told of every host revoked.
	Revoker Revoker
	// Notifier, when set, tells the hosts the scheduler names as waiting
	// for work (sched.WorkWaiting), and, when this process takes the
	// lease, every host waiting while tasks wait too, in case the holder
	// before could not.
	Notifier Notifier
	// ValidateInterval is how often the validator looks for comparisons
	// without being prompted (default one second); GCInterval the same for
	// unneeded checkpoints (default five seconds), CreditInterval for the
	// outbox (default 200 ms). A lease holder that has just taken over
	// finds its work at the next one.
	ValidateInterval, GCInterval, CreditInterval time.Duration
	// Now is the validator's clock; default time.Now.
	Now    func() time.Time
	Logger *slog.Logger
}

// Duties runs this process's share of the duties.
type Duties struct {
	cfg     Config
	compare chan struct{} // a unit waits for a comparison
	credit  chan struct{} // credit joined the outbox
	garbage chan struct{} // checkpoints became unneeded
	revoked chan struct{} // hosts joined revoke
	mu      sync.Mutex
	revoke  []string // hosts revoked, not yet passed to the Revoker
}

// New returns duties for cfg; Run starts them.
func New(cfg Config) *Duties {
	if cfg.ValidateInterval <= 0 {
		cfg.ValidateInterval = time.Second
	}
	if cfg.GCInterval <= 0 {
		cfg.GCInterval = 5 * time.Second
	}
	if cfg.CreditInterval <= 0 {
		cfg.CreditInterval = 200 * time.Millisecond
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	return &Duties{
		cfg:     cfg,
		compare: make(chan struct{}, 1),
		credit:  make(chan struct{}, 1),
		garbage: make(chan struct{}, 1),
		revoked: make(chan struct{}, 1),
	}
}

// Outputs takes the scheduler's outputs (vpeer.GroupConfig.Outputs): it
// prompts the duty each concerns. It does not block.
func (d *Duties) Outputs(_ uint64, outs []any) {
	for _, o := range outs {
		switch o := o.(type) {
		case sched.HostRevoked:
			d.mu.Lock()
			d.revoke = append(d.revoke, o.Host)
			d.mu.Unlock()
			signal(d.revoked)
		case sched.CompareNeeded:
			signal(d.compare)
		case sched.CreditGranted:
			signal(d.credit)
		case sched.CheckpointsUnneeded:
			signal(d.garbage)
		case sched.WorkWaiting:
			if d.cfg.Notifier != nil && d.cfg.Sched.Leading() {
				d.cfg.Notifier.WorkWaiting(o.Hosts)
			}
		}
	}
}

func signal(c chan struct{}) {
	select {
	case c <- struct{}{}:
	default:
	}
}

// Run does the duties until ctx is done.
func (d *Duties) Run(ctx context.Context) {
	var wg sync.WaitGroup
	if d.cfg.Acct != nil {
		f := d.Forwarder()
		wg.Go(func() { f.Run(ctx) })
	}
	if d.cfg.Blobs != nil {
		wg.Go(func() { d.validate(ctx) })
		wg.Go(func() { d.collect(ctx) })
	}
	if d.cfg.Revoker != nil {
		wg.Go(func() { d.revokeHosts(ctx) })
	}
	if d.cfg.Notifier != nil {
		wg.Go(func() { d.notifyOnLease(ctx) })
	}
	wg.Wait()
}

// leaseCheck is how often notifyOnLease looks whether this process took
// the lease.
const leaseCheck = 500 * time.Millisecond

// notifyOnLease tells the hosts waiting for work, whenever this process
// takes the lease and tasks wait: a holder that died between queueing
// them and telling, or a project that restarts, leaves them waiting
// otherwise until their back-off ends. It compares terms, not whether
// this process leads: a lease lost and taken again between two looks is
// a new term, with submissions in between that nobody here told.
func (d *Duties) notifyOnLease(ctx context.Context) {
	var told uint64 // the last term whose taking was told; terms start at 1
	look := func() {
		term, ok := d.cfg.Sched.Term()
		if !ok || term == told {
			return
		}
		var hosts []string
		tasks := 0
		err := d.query(ctx, func(m *sched.Machine) { hosts, tasks = m.IdleHosts() })
		if err == nil && tasks > 0 && len(hosts) > 0 {
			d.cfg.Notifier.WorkWaiting(hosts)
		}
		if err == nil {
			told = term
		}
	}
	look()
	tick.Every(ctx, leaseCheck, nil, look)
}

// query asks a ready member's scheduler, waiting a while for one.
func (d *Duties) query(ctx context.Context, fn func(*sched.Machine)) error {
	ctx, cancel := context.WithTimeout(ctx, queryTimeout)
	defer cancel()
	return d.cfg.Sched.Query(ctx, fn)
}

// queryTimeout bounds how long a duty waits for a member to be ready, as
// while the only one is being replaced.
const queryTimeout = 10 * time.Second

// validate runs the validator while this process holds the lease.
func (d *Duties) validate(ctx context.Context) {
	validator.Run(ctx, validator.Config{
		Pending: func(limit int) (p []sched.Comparison) {
			if !d.cfg.Sched.Leading() {
				return nil
			}
			_ = d.query(ctx, func(m *sched.Machine) { p = m.PendingComparisons(limit) })
			return p
		},
		Blob: func(ctx context.Context, h wu.Hash) ([]byte, error) {
			n, ok, err := d.cfg.Blobs.Size(ctx, h)
			if err == nil && (!ok || n > wu.MaxCompareBytes) {
				err = fmt.Errorf("output %s is missing or over %d bytes", h.Short(), wu.MaxCompareBytes)
			}
			if err != nil {
				return nil, err
			}
			return d.cfg.Blobs.Get(ctx, h)
		},
		Append:   d.cfg.Sched.Append,
		Interval: d.cfg.ValidateInterval,
		Wake:     d.compare,
		Now:      d.cfg.Now,
		Logger:   d.cfg.Logger.With("duty", "validator"),
	})
}

// revokeHosts passes revoked hosts to the Revoker: first every host
// revoked before this process started (a member restored from a snapshot
// replays no older revocation), then each as it is revoked.
func (d *Duties) revokeHosts(ctx context.Context) {
	var all []string
	if err := d.query(ctx, func(m *sched.Machine) { all = m.RevokedHosts() }); err != nil && ctx.Err() == nil {
		d.cfg.Logger.Warn("hosts revoked before this start not known", "err", err)
	}
	if len(all) > 0 {
		d.cfg.Revoker.Revoked(all)
	}
	for {
		select {
		case <-ctx.Done():
			return
		case <-d.revoked:
		}
		d.mu.Lock()
		hosts := d.revoke
		d.revoke = nil
		d.mu.Unlock()
		if len(hosts) > 0 {
			d.cfg.Revoker.Revoked(hosts)
		}
	}
}
