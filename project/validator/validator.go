// Package validator compares the outputs of work units whose app declares a
// tolerance (DESIGN §3). The scheduler state machine cannot read outputs, so
// it lists the pairs of distinct outputs it must know about
// (sched.Machine.PendingComparisons); the validator reads them from the blob
// store, compares them with the app's comparator and appends its verdicts to
// the scheduler's log, where every member applies them alike.
package validator

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"github.com/momonga-project/momonga/internal/tick"
	"github.com/momonga-project/momonga/project/sched"
	"github.com/momonga-project/momonga/vpeer"
	wu "github.com/momonga-project/momonga/workunits"
)

// Config connects the validator to a project.
type Config struct {
	// Pending lists up to limit comparisons the scheduler waits for.
	Pending func(limit int) []sched.Comparison
	// Blob reads an output; an output too large to compare may return an
	// error, which counts as disagreement.
	Blob func(ctx context.Context, h wu.Hash) ([]byte, error)
	// Append adds a record to the scheduler's log.
	Append func(ctx context.Context, r vpeer.Record) (uint64, error)
	// Interval is how often Pending is asked; Wake asks at once.
	Interval time.Duration
	Wake     <-chan struct{}
	// Now measures how long a verdict sent but not yet applied is left
	// alone; default time.Now.
	Now    func() time.Time
	Logger *slog.Logger
}

// resend is how long a verdict appended to the log is given to be applied
// before it is sent again.
const resend = 30 * time.Second

// Run compares until ctx ends.
func Run(ctx context.Context, cfg Config) {
	if cfg.Interval <= 0 {
		cfg.Interval = time.Second
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	sent := map[string]time.Time{}
	tick.Every(ctx, cfg.Interval, cfg.Wake, func() { once(ctx, cfg, sent) })
}

func once(ctx context.Context, cfg Config, sent map[string]time.Time) {
	now := cfg.Now()
	for k, at := range sent {
		if now.Sub(at) > resend {
			delete(sent, k)
		}
	}
	for _, p := range cfg.Pending(256) {
		id := "compare." + p.Unit + "." + string(p.A) + "." + string(p.B)
		if _, ok := sent[id]; ok {
			continue
		}
		a, errA := cfg.Blob(ctx, p.A)
		b, errB := cfg.Blob(ctx, p.B)
		if ctx.Err() != nil {
			return
		}
		agree := errA == nil && errB == nil && wu.OutputsAgree(a, b, p.Tolerance)
		if errA != nil || errB != nil {
			cfg.Logger.Warn("compare outputs: unreadable output counts as disagreement", "unit", p.Unit, "a", errA, "b", errB)
		}
		verdict := wu.Compare{V: wu.WireVersion, Unit: p.Unit, A: p.A, B: p.B, Agree: agree}
		cmd := wu.Command{V: wu.WireVersion, Op: wu.OpCompare, Body: wu.Encode(verdict)}
		if _, err := cfg.Append(ctx, vpeer.Record{ID: id, Payload: wu.Encode(cmd)}); err != nil && !errors.Is(err, vpeer.ErrDuplicate) {
			cfg.Logger.Warn("append verdict", "unit", p.Unit, "err", err)
			return
		}
		sent[id] = now
	}
}
