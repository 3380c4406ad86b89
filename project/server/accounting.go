package server

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/momonga-project/momonga/project/accounting"
	"github.com/momonga-project/momonga/project/sched"
	"github.com/momonga-project/momonga/vpeer"
	wu "github.com/momonga-project/momonga/workunits"
)

// The accounting virtual peer (DESIGN §5, §9): a second group, beside the
// scheduler's, that counts credit from the scheduler's outputs. It has its
// own log, snapshots and registry keys, and as many members as the
// scheduler.
const (
	AcctStream          = "ACCT"
	AcctSubject         = "acct.log"
	AcctSnapshotsBucket = "ACCT_SNAPSHOTS"
	AcctGroup           = "acct"
	// AcctSource names the scheduler's outputs in the accounting peer's
	// de-duplication table.
	AcctSource = "sched"
)

// openAcct makes this process's part of the accounting virtual peer.
func (s *Server) openAcct(ctx context.Context, js jetstream.JetStream) error {
	assets := peerAssets{group: AcctGroup, stream: AcctStream, subject: AcctSubject, snapshots: AcctSnapshotsBucket}
	log, group, _, err := s.openPeer(ctx, js, assets, nil, func() vpeer.StateMachine { return accounting.New() })
	if err != nil {
		return fmt.Errorf("accounting: %w", err)
	}
	s.acctLog, s.acct = log, group
	return nil
}

// Acct is this process's part of the accounting virtual peer.
func (s *Server) Acct() *vpeer.Group { return s.acct }

func acctOf(m *vpeer.Member) *accounting.Machine { return m.Machine().(*accounting.Machine) }

// fillCredit sets the credit of the hosts, users and teams listed from the
// accounting peer, plus the scheduler's outputs it has not applied yet
// (pending, read from the scheduler before this call), so that credit shows
// as soon as it is granted and never twice. acked is the last output the
// scheduler had seen acknowledged: the member asked must have applied at
// least that far, or it is waited for.
func (s *Server) fillCredit(ctx context.Context, now time.Time, acked uint64, pending []accounting.Grant, hosts []wu.HostStatus, users []wu.UserStatus, teams []wu.TeamStatus) error {
	t := time.NewTicker(10 * time.Millisecond)
	defer t.Stop()
	for {
		done := false
		err := s.acct.Query(ctx, func(m *vpeer.Member) {
			a := acctOf(m)
			if a.Through(AcctSource) < acked {
				return
			}
			a.Ledger(AcctSource, pending).Fill(now, hosts, users, teams)
			done = true
		})
		if err != nil || done {
			return err
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("the accounting peer is behind the acknowledged output %d: %w", acked, ctx.Err())
		case <-t.C:
		}
	}
}

// outbox reads the scheduler's outputs not yet acknowledged (up to limit,
// all for 0) and the last one acknowledged.
func outbox(m *sched.Machine, limit int) (pending []accounting.Grant, acked uint64) {
	pending = m.Outbox(limit)
	acked = m.LastOutput()
	if len(pending) > 0 {
		acked = pending[0].ID - 1
	}
	return pending, acked
}

// forwarder delivers the scheduler's outputs to the accounting peer and
// acknowledges what it has applied: the virtual-peer-to-virtual-peer link.
// It acts only while leading() (this process holds the scheduler's lease),
// and every step is harmless when repeated: a delivery of grants already
// applied is ignored by the accounting machine, an acknowledgement of
// outputs already trimmed changes nothing. A new lease holder therefore
// simply starts again from the scheduler's outbox, which holds everything
// not acknowledged.
type forwarder struct {
	leading func() bool
	// outbox reads up to max outputs the scheduler has not had
	// acknowledged, oldest first.
	outbox func(ctx context.Context, max int) ([]accounting.Grant, error)
	// deliver puts a delivery in the accounting log and returns the
	// receipt of a member that applied it.
	deliver func(ctx context.Context, d accounting.Delivery) (accounting.Receipt, error)
	// ack appends to the scheduler's log that every output up to through
	// is applied.
	ack func(ctx context.Context, through uint64) error

	batch    int           // outputs per delivery
	interval time.Duration // how often the outbox is looked at without a wake-up
	wake     chan struct{} // a wake-up: the scheduler may have granted credit
	logger   *slog.Logger
}

// run forwards until ctx is done.
func (f *forwarder) run(ctx context.Context) {
	t := time.NewTicker(f.interval)
	defer t.Stop()
	for {
		for {
			more, err := f.round(ctx)
			if err != nil && ctx.Err() == nil {
				f.logger.Warn("deliver credit to the accounting peer", "err", err)
			}
			if !more || err != nil {
				break
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-f.wake:
		}
	}
}

// round delivers one batch of outputs and acknowledges what the accounting
// peer applied; more reports whether the outbox may hold another batch.
func (f *forwarder) round(ctx context.Context) (more bool, err error) {
	if !f.leading() {
		return false, nil
	}
	out, err := f.outbox(ctx, f.batch)
	if err != nil || len(out) == 0 {
		return false, err
	}
	rc, err := f.deliver(ctx, accounting.Delivery{V: accounting.Version, Source: AcctSource, Grants: out})
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
	if err := f.ack(ctx, rc.Through); err != nil {
		return false, err
	}
	return len(out) == f.batch, nil
}

// receiptTimeout bounds the wait for an accounting member's receipt.
const receiptTimeout = 5 * time.Second

// deliverOutputs appends d to the accounting log and waits for the first
// member's receipt. The record's id is made of the outputs' ids, so that a
// publish repeated within JetStream's window is dropped there; then, as
// nothing applies the record again, an empty delivery asks how far the
// accounting peer is.
func deliverOutputs(ctx context.Context, nc *nats.Conn, log vpeer.Log, d accounting.Delivery) (accounting.Receipt, error) {
	var rc accounting.Receipt
	ctx, cancel := context.WithTimeout(ctx, receiptTimeout)
	defer cancel()
	inbox := nc.NewRespInbox()
	sub, err := nc.SubscribeSync(inbox)
	if err != nil {
		return rc, err
	}
	defer func() { _ = sub.Unsubscribe() }()
	rec := vpeer.Record{ReplyTo: inbox, Payload: wu.Encode(d)}
	if len(d.Grants) > 0 {
		rec.ID = "acct." + d.Source + "." + strconv.FormatUint(d.Grants[0].ID, 10) + "-" + strconv.FormatUint(d.Grants[len(d.Grants)-1].ID, 10)
	}
	_, err = log.Append(ctx, rec)
	if errors.Is(err, vpeer.ErrDuplicate) {
		probe := accounting.Delivery{V: d.V, Source: d.Source}
		_, err = log.Append(ctx, vpeer.Record{ReplyTo: inbox, Payload: wu.Encode(probe)})
	}
	if err != nil {
		return rc, fmt.Errorf("append to the accounting log: %w", err)
	}
	msg, err := sub.NextMsgWithContext(ctx)
	if err != nil {
		return rc, fmt.Errorf("no receipt from the accounting peer: %w", err)
	}
	if err := json.Unmarshal(msg.Data, &rc); err != nil {
		return rc, fmt.Errorf("receipt from the accounting peer: %w", err)
	}
	return rc, nil
}

// ackOutputs appends OpOutputsAcked to the scheduler's log and waits for a
// member's answer: an acknowledgement the scheduler refuses (beyond the
// last output it made, which only a log reset behind the accounting peer's
// back can cause) is an error, not a trimmed outbox.
func ackOutputs(ctx context.Context, nc *nats.Conn, log vpeer.Log, through uint64) error {
	ctx, cancel := context.WithTimeout(ctx, receiptTimeout)
	defer cancel()
	inbox := nc.NewRespInbox()
	sub, err := nc.SubscribeSync(inbox)
	if err != nil {
		return err
	}
	defer func() { _ = sub.Unsubscribe() }()
	cmd := wu.Command{V: wu.WireVersion, Op: sched.OpOutputsAcked, Body: wu.Encode(sched.OutputsAcked{V: 1, Through: through})}
	_, err = log.Append(ctx, vpeer.Record{ID: "sched.acked." + strconv.FormatUint(through, 10), ReplyTo: inbox, Payload: wu.Encode(cmd)})
	if errors.Is(err, vpeer.ErrDuplicate) {
		return nil // the same acknowledgement is in the log already
	}
	if err != nil {
		return fmt.Errorf("acknowledge outputs to the scheduler: %w", err)
	}
	msg, err := sub.NextMsgWithContext(ctx)
	if err != nil {
		return fmt.Errorf("acknowledge outputs to the scheduler: no answer: %w", err)
	}
	var ack wu.Ack
	if err := json.Unmarshal(msg.Data, &ack); err != nil {
		return fmt.Errorf("acknowledge outputs to the scheduler: %w", err)
	}
	if ack.Error != nil {
		return fmt.Errorf("the scheduler refused the acknowledgement of outputs up to %d: %w", through, ack.Error)
	}
	return nil
}

// startForwarder runs this process's forwarder until ctx is done: it acts
// while a member here holds the scheduler's lease.
func (s *Server) startForwarder(ctx context.Context) {
	f := s.newForwarder(s.group.Leading)
	s.trust.wg.Go(func() { f.run(ctx) })
}

func (s *Server) newForwarder(leading func() bool) *forwarder {
	return &forwarder{
		leading: leading,
		outbox: func(ctx context.Context, max int) (out []accounting.Grant, err error) {
			err = s.group.Query(ctx, func(m *vpeer.Member) { out = machineOf(m).Outbox(max) })
			return out, err
		},
		deliver: func(ctx context.Context, d accounting.Delivery) (accounting.Receipt, error) {
			return deliverOutputs(ctx, s.nc, s.acctLog, d)
		},
		ack:      func(ctx context.Context, through uint64) error { return ackOutputs(ctx, s.nc, s.log, through) },
		batch:    256,
		interval: 200 * time.Millisecond,
		wake:     s.outputs,
		logger:   s.cfg.Logger.With("part", "forwarder"),
	}
}
