package jetlog

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

// stallingReader reads a MemLog. Its first reader delivers the first two
// records, then nothing more however the log grows; its second fails at
// once: what readers did after the leader of the log's stream died.
type stallingReader struct {
	*vpeer.MemLog
	reads atomic.Int32
}

func (l *stallingReader) read(ctx context.Context, from uint64, fn func(vpeer.Record) error) error {
	switch l.reads.Add(1) {
	case 1:
		return l.MemLog.Read(ctx, from, func(r vpeer.Record) error {
			if r.Seq > 2 {
				<-ctx.Done()
				return ctx.Err()
			}
			return wrapFinal(fn(r))
		})
	case 2:
		return errors.New("nats: no response from stream")
	}
	return l.MemLog.Read(ctx, from, func(r vpeer.Record) error { return wrapFinal(fn(r)) })
}

// wrapFinal marks fn's errors as readOnce does.
func wrapFinal(err error) error {
	if err != nil {
		return final{err}
	}
	return nil
}

func memLog(t *testing.T, records int) *vpeer.MemLog {
	t.Helper()
	l := vpeer.NewMemLog()
	for range records {
		if _, err := l.Append(context.Background(), vpeer.Record{Payload: []byte("x")}); err != nil {
			t.Fatal(err)
		}
	}
	return l
}

func testResumer(read func(context.Context, uint64, func(vpeer.Record) error) error, l vpeer.Log) resumer {
	return resumer{read: read, last: l.LastSeq, closed: func() bool { return false }, stall: 50 * time.Millisecond, logger: slog.New(slog.DiscardHandler)}
}

func TestReadResumesAfterAStallAndAFailure(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	l := &stallingReader{MemLog: memLog(t, 5)}
	var got []uint64
	done := errors.New("done")
	err := resume(ctx, 1, func(r vpeer.Record) error {
		got = append(got, r.Seq)
		if r.Seq == 5 {
			return done
		}
		return nil
	}, testResumer(l.read, l))
	if err != done {
		t.Fatalf("Read returned %v, want the error of fn as is", err)
	}
	if want := []uint64{1, 2, 3, 4, 5}; !slices.Equal(got, want) {
		t.Errorf("delivered %v, want %v: every record once, in order", got, want)
	}
	if n := l.reads.Load(); n != 3 {
		t.Errorf("%d readers, want 3: the stalled one, the failed one, the one that finished", n)
	}
}

// A record that takes fn longer than the stall time is not a stall.
func TestReadWaitsForASlowFn(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	l := memLog(t, 3)
	var reads atomic.Int32
	read := func(ctx context.Context, from uint64, fn func(vpeer.Record) error) error {
		reads.Add(1)
		return l.Read(ctx, from, func(r vpeer.Record) error { return wrapFinal(fn(r)) })
	}
	done := errors.New("done")
	var got []uint64
	err := resume(ctx, 1, func(r vpeer.Record) error {
		got = append(got, r.Seq)
		if r.Seq == 2 {
			time.Sleep(300 * time.Millisecond) // six stall times, the log holding record 3
		}
		if r.Seq == 3 {
			return done
		}
		return nil
	}, testResumer(read, l))
	if err != done || !slices.Equal(got, []uint64{1, 2, 3}) || reads.Load() != 1 {
		t.Fatalf("Read = %v after %v in %d readers; want fn's error after 1, 2, 3 in one reader", err, got, reads.Load())
	}
}

// A closed connection ends Read: no reader can ever succeed.
func TestReadEndsWhenTheConnectionCloses(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	l := memLog(t, 1)
	var reads atomic.Int32
	r := testResumer(func(context.Context, uint64, func(vpeer.Record) error) error {
		reads.Add(1)
		return errors.New("nats: connection closed")
	}, l)
	r.closed = func() bool { return true }
	err := resume(ctx, 1, func(vpeer.Record) error { return nil }, r)
	if err == nil || ctx.Err() != nil || reads.Load() != 1 {
		t.Fatalf("Read = %v after %d readers; want an error after one", err, reads.Load())
	}
}
