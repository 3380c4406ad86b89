package server

import (
	"context"
	"errors"
	"log/slog"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/momonga-project/momonga/vpeer"
)

// stallingLog is a MemLog whose first reader delivers the first two records,
// then nothing more however the log grows, and whose second reader fails at
// once: what a reader did after the leader of the log's stream died.
type stallingLog struct {
	*vpeer.MemLog
	reads atomic.Int32
}

func (l *stallingLog) Read(ctx context.Context, from uint64, fn func(vpeer.Record) error) error {
	switch l.reads.Add(1) {
	case 1:
		return l.MemLog.Read(ctx, from, func(r vpeer.Record) error {
			if r.Seq > 2 {
				<-ctx.Done()
				return ctx.Err()
			}
			return fn(r)
		})
	case 2:
		return errors.New("no response from stream")
	}
	return l.MemLog.Read(ctx, from, fn)
}

func TestGuardedLogReadsAgainAfterAStall(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	l := &stallingLog{MemLog: vpeer.NewMemLog()}
	for range 5 {
		if _, err := l.Append(ctx, vpeer.Record{Payload: []byte("x")}); err != nil {
			t.Fatal(err)
		}
	}
	g := guardedLog{trimmingLog: l, stall: 50 * time.Millisecond, logger: slog.New(slog.DiscardHandler)}
	var got []uint64
	done := errors.New("done")
	err := g.Read(ctx, 1, func(r vpeer.Record) error {
		got = append(got, r.Seq)
		if r.Seq == 5 {
			return done
		}
		return nil
	})
	if !errors.Is(err, done) {
		t.Fatalf("Read returned %v, want the error of fn", err)
	}
	if want := []uint64{1, 2, 3, 4, 5}; !slices.Equal(got, want) {
		t.Errorf("applied %v, want %v: every record once, in order", got, want)
	}
	if n := l.reads.Load(); n != 3 {
		t.Errorf("%d reads, want 3: the stalled one, the failed one, the one that finished", n)
	}
}
