package server

import (
	"context"
	"errors"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/momonga-project/momonga/vpeer"
)

// guardedLog is the scheduler's log as members read it on a shared NATS.
// When the server leading the log's stream dies, a member's reader has to
// move to a consumer on another server; in one run of the cluster test a
// member stopped applying at the kill while the log grew, and fell behind
// for good. So a reader that delivers nothing for
// stall while the log holds records it has not delivered is started again
// after the last record it delivered, and a reader that fails while the
// cluster elects a new leader is tried again rather than stopping its
// member.
type guardedLog struct {
	trimmingLog
	stall  time.Duration
	logger *slog.Logger
}

type trimmingLog interface {
	vpeer.Log
	vpeer.Trimmer
}

// errApply marks an error of the caller's fn, which Read returns as is.
type errApply struct{ err error }

func (e errApply) Error() string { return e.err.Error() }

func (g guardedLog) Read(ctx context.Context, from uint64, fn func(vpeer.Record) error) error {
	var next atomic.Uint64 // the first record not yet applied
	next.Store(from)
	for {
		var progress atomic.Uint64 // records entered into fn
		rctx, cancel := context.WithCancel(ctx)
		var stalled atomic.Bool
		watch := make(chan struct{})
		go func() {
			defer close(watch)
			t := time.NewTicker(g.stall)
			defer t.Stop()
			seen := progress.Load()
			for {
				select {
				case <-rctx.Done():
					return
				case <-t.C:
				}
				now := progress.Load()
				if now != seen {
					seen = now
					continue
				}
				last, err := g.LastSeq(rctx)
				if err == nil && last >= next.Load() {
					stalled.Store(true)
					cancel()
					return
				}
			}
		}()
		err := g.trimmingLog.Read(rctx, next.Load(), func(r vpeer.Record) error {
			progress.Add(1)
			if err := fn(r); err != nil {
				return errApply{err}
			}
			next.Store(r.Seq + 1)
			return nil
		})
		cancel()
		<-watch
		if ea, ok := errors.AsType[errApply](err); ok {
			return ea.err
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if stalled.Load() {
			g.logger.Warn("log reader delivered nothing while the log grew; reading again", "from", next.Load())
			continue
		}
		g.logger.Warn("log reader failed; reading again", "from", next.Load(), "err", err)
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(time.Second):
		}
	}
}
