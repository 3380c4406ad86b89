package duties

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"time"

	"github.com/momonga-project/momonga/internal/tick"
	"github.com/momonga-project/momonga/project/accounting"
	"github.com/momonga-project/momonga/project/sched"
	"github.com/momonga-project/momonga/vpeer"
	wu "github.com/momonga-project/momonga/workunits"
)

// A Forwarder delivers the scheduler's outputs to the accounting peer and
// acknowledges what it has applied: the virtual-peer-to-virtual-peer link
// (DESIGN §5). It acts only while Leading, and every step is harmless when
// repeated: a delivery of grants already applied is ignored by the
// accounting machine, an acknowledgement of outputs already trimmed changes
// nothing. A new lease holder therefore simply starts again from the
// scheduler's outbox, which holds everything not acknowledged.
type Forwarder struct {
	Leading func() bool
	// Outbox reads up to max outputs the scheduler has not had
	// acknowledged, oldest first.
	Outbox func(ctx context.Context, max int) ([]accounting.Grant, error)
	// Deliver puts a delivery in the accounting log and returns the
	// receipt of a member that applied it.
	Deliver func(ctx context.Context, d accounting.Delivery) (accounting.Receipt, error)
	// Ack appends to the scheduler's log that every output up to through
	// is applied.
	Ack func(ctx context.Context, through uint64) error

	Batch    int             // outputs per delivery
	Interval time.Duration   // how often the outbox is looked at without a prompt
	Wake     <-chan struct{} // a prompt: the scheduler may have granted credit
	Logger   *slog.Logger
}

// Forwarder is the duties' forwarder: from this process's scheduler
// members to the accounting log, while a member here holds the lease.
func (d *Duties) Forwarder() *Forwarder {
	return &Forwarder{
		Leading: d.cfg.Sched.Leading,
		Outbox: func(ctx context.Context, max int) (out []accounting.Grant, err error) {
			err = d.cfg.Sched.Query(ctx, func(m *sched.Machine) { out = m.Outbox(max) })
			return out, err
		},
		Deliver: func(ctx context.Context, dl accounting.Delivery) (accounting.Receipt, error) {
			return Deliver(ctx, d.cfg.Acct, dl)
		},
		Ack:      func(ctx context.Context, through uint64) error { return Ack(ctx, d.cfg.Sched, through) },
		Batch:    256,
		Interval: d.cfg.CreditInterval,
		Wake:     d.credit,
		Logger:   d.cfg.Logger.With("duty", "credit"),
	}
}

// Run forwards until ctx is done.
func (f *Forwarder) Run(ctx context.Context) {
	drain := func() {
		for {
			more, err := f.Round(ctx)
			if err != nil && ctx.Err() == nil {
				f.Logger.Warn("deliver credit to the accounting peer", "err", err)
			}
			if !more || err != nil {
				return
			}
		}
	}
	drain()
	tick.Every(ctx, f.Interval, f.Wake, drain)
}

// Round delivers one batch of outputs and acknowledges what the accounting
// peer applied; more reports whether the outbox may hold another batch.
func (f *Forwarder) Round(ctx context.Context) (more bool, err error) {
	if !f.Leading() {
		return false, nil
	}
	out, err := f.Outbox(ctx, f.Batch)
	if err != nil || len(out) == 0 {
		return false, err
	}
	rc, err := f.Deliver(ctx, accounting.Delivery{V: accounting.Version, Source: sched.OutputSource, Grants: out})
	if err != nil {
		return false, err
	}
	if rc.Error != nil && rc.Through+1 < out[0].ID {
		// The accounting peer lacks outputs the scheduler no longer holds:
		// only an acknowledgement that was never true leads here.
		return false, fmt.Errorf("the accounting peer has applied outputs up to %d, but the scheduler's outbox starts at %d: %v", rc.Through, out[0].ID, rc.Error)
	}
	if rc.Through < out[0].ID {
		return false, fmt.Errorf("outputs %d to %d not applied: %v", out[0].ID, out[len(out)-1].ID, rc.Error)
	}
	if err := f.Ack(ctx, rc.Through); err != nil {
		return false, err
	}
	return len(out) == f.Batch, nil
}

// receiptTimeout bounds the wait for a member's answer to a delivery or an
// acknowledgement.
const receiptTimeout = 5 * time.Second

// Deliver appends dl to the accounting log and returns the first member's
// receipt. The record's id is made of the outputs' ids, so that a publish
// repeated within JetStream's window is dropped there; then, as nothing
// applies the record again, an empty delivery asks how far the accounting
// peer is.
func Deliver(ctx context.Context, acct Log, dl accounting.Delivery) (accounting.Receipt, error) {
	var rc accounting.Receipt
	ctx, cancel := context.WithTimeout(ctx, receiptTimeout)
	defer cancel()
	rec := vpeer.Record{Payload: wu.Encode(dl)}
	if len(dl.Grants) > 0 {
		rec.ID = "acct." + dl.Source + "." + strconv.FormatUint(dl.Grants[0].ID, 10) + "-" + strconv.FormatUint(dl.Grants[len(dl.Grants)-1].ID, 10)
	}
	reply, err := acct.Request(ctx, rec)
	if errors.Is(err, vpeer.ErrDuplicate) {
		probe := accounting.Delivery{V: dl.V, Source: dl.Source}
		reply, err = acct.Request(ctx, vpeer.Record{Payload: wu.Encode(probe)})
	}
	if err != nil {
		return rc, fmt.Errorf("deliver to the accounting peer: %w", err)
	}
	if err := json.Unmarshal(reply, &rc); err != nil {
		return rc, fmt.Errorf("receipt from the accounting peer: %w", err)
	}
	return rc, nil
}

// Ack appends OpOutputsAcked to the scheduler's log and waits for a
// member's answer: an acknowledgement the scheduler refuses (beyond the
// last output it made, which only a log reset behind the accounting peer's
// back can cause) is an error, not a trimmed outbox.
func Ack(ctx context.Context, s Log, through uint64) error {
	ctx, cancel := context.WithTimeout(ctx, receiptTimeout)
	defer cancel()
	cmd := wu.Command{V: wu.WireVersion, Op: sched.OpOutputsAcked, Body: wu.Encode(sched.OutputsAcked{V: 1, Through: through})}
	reply, err := s.Request(ctx, vpeer.Record{ID: "sched.acked." + strconv.FormatUint(through, 10), Payload: wu.Encode(cmd)})
	if errors.Is(err, vpeer.ErrDuplicate) {
		return nil // the same acknowledgement is in the log already
	}
	if err != nil {
		return fmt.Errorf("acknowledge outputs to the scheduler: %w", err)
	}
	var ack wu.Ack
	if err := json.Unmarshal(reply, &ack); err != nil {
		return fmt.Errorf("acknowledge outputs to the scheduler: %w", err)
	}
	if ack.Error != nil {
		return fmt.Errorf("the scheduler refused the acknowledgement of outputs up to %d: %w", through, ack.Error)
	}
	return nil
}
