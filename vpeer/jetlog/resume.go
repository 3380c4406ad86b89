package jetlog

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/momonga-project/momonga/vpeer"
)

// final marks an error that ends Read: fn's, returned as is, or a message
// JetStream should never deliver.
type final struct{ err error }

func (e final) Error() string { return e.err.Error() }
func (e final) Unwrap() error { return e.err }

// resumer is what resume needs of a log: one reader at a time, the last
// sequence number, whether the connection is closed for good, the stall
// time and where to say what happened.
type resumer struct {
	read   func(ctx context.Context, from uint64, fn func(vpeer.Record) error) error
	last   func(ctx context.Context) (uint64, error)
	closed func() bool
	stall  time.Duration
	logger *slog.Logger
}

// Pauses between readers that failed at once: growing, so that a stream
// gone for good does not fill the log.
const (
	firstPause = 250 * time.Millisecond
	maxPause   = 5 * time.Second
)

// resume runs readers, one after the other, each from the record after the
// last one delivered, until ctx is done, fn fails or the connection is
// closed (see Log.Read).
func resume(ctx context.Context, from uint64, fn func(vpeer.Record) error, r resumer) error {
	var next atomic.Uint64 // the first record not yet delivered
	next.Store(from)
	pause := firstPause
	for {
		var (
			entered, left atomic.Uint64 // calls of fn begun and ended
			stalled       atomic.Bool
		)
		rctx, cancel := context.WithCancel(ctx)
		watch := make(chan struct{})
		go func() {
			defer close(watch)
			t := time.NewTicker(r.stall)
			defer t.Stop()
			seen := entered.Load()
			for {
				select {
				case <-rctx.Done():
					return
				case <-t.C:
				}
				now := entered.Load()
				if now != seen || left.Load() != now {
					seen = now // delivering, or fn is at work
					continue
				}
				if last, err := r.last(rctx); err == nil && last >= next.Load() {
					stalled.Store(true)
					cancel()
					return
				}
			}
		}()
		delivered := uint64(0)
		err := r.read(rctx, next.Load(), func(rec vpeer.Record) error {
			entered.Add(1)
			defer left.Add(1)
			if err := fn(rec); err != nil {
				return err
			}
			next.Store(rec.Seq + 1)
			delivered++
			return nil
		})
		cancel()
		<-watch
		var f final
		switch {
		case errors.As(err, &f):
			return f.err
		case ctx.Err() != nil:
			return ctx.Err()
		case r.closed() || errors.Is(err, nats.ErrConnectionClosed):
			return fmt.Errorf("%w (connection closed)", err)
		case stalled.Load():
			r.logger.Warn("jetlog: the log's reader delivered nothing while the log grew; reading again", "from", next.Load(), "err", err)
			continue
		}
		if delivered > 0 {
			pause = firstPause
		}
		r.logger.Warn("jetlog: the log's reader failed; reading again", "from", next.Load(), "in", pause, "err", err)
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(pause):
		}
		pause = min(2*pause, maxPause)
	}
}
