package vpeertest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/momonga-project/momonga/vpeer"
)

// Timeout bounds every wait in these tests.
const Timeout = 5 * time.Second

// CheckFor calls f every interval until it returns nil, and fails the test
// with f's last error if that does not happen within timeout. It must be
// called from the test's own goroutine.
func CheckFor(t testing.TB, timeout, interval time.Duration, f func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		err := f()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("still failing after %v: %v", timeout, err)
		}
		time.Sleep(interval)
	}
}

// Append appends r to l and fails the test on any error.
func Append(t testing.TB, l vpeer.Log, r vpeer.Record) uint64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), Timeout)
	defer cancel()
	seq, err := l.Append(ctx, r)
	if err != nil {
		t.Fatalf("append %q: %v", r.Payload, err)
	}
	return seq
}

var errEnough = errors.New("read enough")

// ReadN reads n records of l from sequence from on.
func ReadN(t testing.TB, l vpeer.Log, from uint64, n int) []vpeer.Record {
	t.Helper()
	if n == 0 {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), Timeout)
	defer cancel()
	var got []vpeer.Record
	err := l.Read(ctx, from, func(r vpeer.Record) error {
		got = append(got, r)
		if len(got) == n {
			return errEnough
		}
		return nil
	})
	if !errors.Is(err, errEnough) {
		t.Fatalf("read %d records from %d: got %d, then %v", n, from, len(got), err)
	}
	return got
}

// ReadAll reads every record of l, as of its LastSeq now.
func ReadAll(t testing.TB, l vpeer.Log) []vpeer.Record {
	t.Helper()
	last, err := l.LastSeq(context.Background())
	if err != nil {
		t.Fatalf("last sequence: %v", err)
	}
	return ReadN(t, l, 1, int(last))
}

// TestLog checks the behaviour every vpeer.Log must show: order, ID
// de-duplication, blocking reads, LastSeq, safe concurrent appends.
// newLog returns a new empty log each time it is called.
func TestLog(t *testing.T, newLog func(t *testing.T) vpeer.Log) {
	t.Run("Empty", func(t *testing.T) {
		l := newLog(t)
		if last, err := l.LastSeq(context.Background()); err != nil || last != 0 {
			t.Fatalf("LastSeq of an empty log = %d, %v; want 0, nil", last, err)
		}
		// Nothing to wait for here but the absence of a record.
		ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
		defer cancel()
		err := l.Read(ctx, 1, func(r vpeer.Record) error {
			return fmt.Errorf("read record %d from an empty log", r.Seq)
		})
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("Read of an empty log returned %v, want the context's error", err)
		}
	})

	t.Run("AppendReadOrder", func(t *testing.T) {
		l := newLog(t)
		loc := time.FixedZone("test", 9*3600)
		var want []vpeer.Record
		for i := range 20 {
			r := vpeer.Record{Payload: fmt.Appendf(nil, "record %d", i)}
			switch i {
			case 18:
				r = vpeer.Record{Snapshot: true}
			case 5, 6, 17:
				r.Payload = nil
				r.Batch = []vpeer.Request{{ReplyTo: "a." + fmt.Sprint(i), Payload: []byte("first")}, {Payload: []byte{}}, {ReplyTo: "c", Payload: []byte{0, 1, 2}}}
			}
			switch i % 4 {
			case 1:
				r.ID = fmt.Sprintf("id-%d", i)
			case 2:
				r.ReplyTo = fmt.Sprintf("reply.%d", i)
			case 3:
				r.ID = fmt.Sprintf("tick-%d", i)
				r.Tick = time.Date(2031, 2, 3, 4, 5, 6, 789+i, loc)
				r.Payload = nil
			}
			if i%5 == 0 {
				r.Term = uint64(1000 + i) // a lease holder's record
			}
			r.Seq = Append(t, l, r)
			if r.Seq != uint64(i+1) {
				t.Fatalf("record %d got sequence %d, want %d", i, r.Seq, i+1)
			}
			want = append(want, r)
		}
		if last, err := l.LastSeq(context.Background()); err != nil || last != 20 {
			t.Fatalf("LastSeq = %d, %v; want 20, nil", last, err)
		}
		sameRecords(t, ReadN(t, l, 1, 20), want)
		sameRecords(t, ReadN(t, l, 0, 20), want)
		sameRecords(t, ReadN(t, l, 11, 10), want[10:])
	})

	t.Run("Duplicate", func(t *testing.T) {
		l := newLog(t)
		first := Append(t, l, vpeer.Record{ID: "req-1", Payload: []byte("first")})
		Append(t, l, vpeer.Record{Payload: []byte("other")})
		seq, err := l.Append(context.Background(), vpeer.Record{ID: "req-1", Payload: []byte("second")})
		if !errors.Is(err, vpeer.ErrDuplicate) || seq != first {
			t.Fatalf("second append of ID req-1 = %d, %v; want %d, ErrDuplicate", seq, err, first)
		}
		// Records without an ID are never duplicates.
		a := Append(t, l, vpeer.Record{Payload: []byte("same")})
		b := Append(t, l, vpeer.Record{Payload: []byte("same")})
		if a == b {
			t.Fatalf("two records without ID share sequence %d", a)
		}
		got := ReadAll(t, l)
		if len(got) != 4 || string(got[0].Payload) != "first" {
			t.Fatalf("log after a duplicate = %v; want 4 records, the first one kept", payloads(got))
		}
	})

	t.Run("BlockingRead", func(t *testing.T) {
		l := newLog(t)
		Append(t, l, vpeer.Record{Payload: []byte("before")})
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		got := make(chan vpeer.Record, 10)
		done := make(chan error, 1)
		go func() {
			done <- l.Read(ctx, 2, func(r vpeer.Record) error {
				got <- r
				return nil
			})
		}()
		for i := range 3 {
			seq := Append(t, l, vpeer.Record{Payload: fmt.Appendf(nil, "after %d", i)})
			select {
			case r := <-got:
				if r.Seq != seq || string(r.Payload) != fmt.Sprintf("after %d", i) {
					t.Fatalf("blocked Read woke with %d %q, want %d %q", r.Seq, r.Payload, seq, fmt.Sprintf("after %d", i))
				}
			case err := <-done:
				t.Fatalf("Read returned early: %v", err)
			case <-time.After(Timeout):
				t.Fatalf("blocked Read did not wake for record %d", seq)
			}
		}
		cancel()
		select {
		case err := <-done:
			if !errors.Is(err, context.Canceled) {
				t.Fatalf("cancelled Read returned %v, want context.Canceled", err)
			}
		case <-time.After(Timeout):
			t.Fatal("Read did not return after its context was cancelled")
		}
	})

	t.Run("ReadStopsOnError", func(t *testing.T) {
		l := newLog(t)
		for i := range 5 {
			Append(t, l, vpeer.Record{Payload: fmt.Appendf(nil, "%d", i)})
		}
		stop := errors.New("stop here")
		var seen []uint64
		err := l.Read(context.Background(), 1, func(r vpeer.Record) error {
			seen = append(seen, r.Seq)
			if r.Seq == 3 {
				return stop
			}
			return nil
		})
		if !errors.Is(err, stop) || len(seen) != 3 {
			t.Fatalf("Read = %v after %v; want the callback's error after 3 records", err, seen)
		}
	})

	t.Run("Trim", func(t *testing.T) {
		l := newLog(t)
		tr, ok := l.(vpeer.Trimmer)
		if !ok {
			t.Skip("the log cannot be trimmed")
		}
		for i := range 10 {
			Append(t, l, vpeer.Record{Payload: fmt.Appendf(nil, "%d", i+1)})
		}
		ctx := context.Background()
		for _, seq := range []uint64{4, 2} { // trimming less than before does nothing
			if err := tr.Trim(ctx, seq); err != nil {
				t.Fatalf("trim %d: %v", seq, err)
			}
		}
		for _, from := range []uint64{0, 1, 5} {
			if got := ReadN(t, l, from, 6); got[0].Seq != 5 || string(got[0].Payload) != "5" || got[5].Seq != 10 {
				t.Fatalf("read from %d after trimming up to 4: %v", from, payloads(got))
			}
		}
		if got := ReadN(t, l, 7, 1); got[0].Seq != 7 {
			t.Fatalf("read from 7 gives record %d", got[0].Seq)
		}
		if last, err := l.LastSeq(ctx); err != nil || last != 10 {
			t.Fatalf("LastSeq after trimming = %d, %v; want 10", last, err)
		}
		if seq := Append(t, l, vpeer.Record{Payload: []byte("11")}); seq != 11 {
			t.Fatalf("append after trimming got sequence %d, want 11", seq)
		}
	})

	t.Run("ConcurrentAppend", func(t *testing.T) {
		l := newLog(t)
		const writers, each = 8, 25
		seqs := make(chan uint64, writers*each)
		var wg sync.WaitGroup
		for w := range writers {
			wg.Go(func() {
				for i := range each {
					r := vpeer.Record{ID: fmt.Sprintf("w%d-%d", w, i), Payload: fmt.Appendf(nil, "w%d-%d", w, i)}
					seq, err := l.Append(context.Background(), r)
					if err != nil {
						t.Errorf("append %s: %v", r.ID, err)
						return
					}
					seqs <- seq
				}
			})
		}
		wg.Wait()
		close(seqs)
		if t.Failed() {
			return
		}
		distinct := make(map[uint64]bool)
		for s := range seqs {
			if distinct[s] {
				t.Fatalf("sequence %d returned twice", s)
			}
			distinct[s] = true
		}
		got := ReadAll(t, l)
		if len(got) != writers*each {
			t.Fatalf("read %d records, want %d", len(got), writers*each)
		}
		ids := make(map[string]bool)
		for i, r := range got {
			if r.Seq != uint64(i+1) || !distinct[r.Seq] || r.ID != string(r.Payload) || ids[r.ID] {
				t.Fatalf("record %d: seq %d id %q payload %q; want seq %d, a returned sequence, a new ID equal to the payload", i, r.Seq, r.ID, r.Payload, i+1)
			}
			ids[r.ID] = true
		}
	})
}

func sameRecords(t *testing.T, got, want []vpeer.Record) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("read %d records, want %d", len(got), len(want))
	}
	for i := range want {
		g, w := got[i], want[i]
		if g.Seq != w.Seq || g.ID != w.ID || g.ReplyTo != w.ReplyTo || !g.Tick.Equal(w.Tick) || !bytes.Equal(g.Payload, w.Payload) || g.Snapshot != w.Snapshot || g.Term != w.Term || g.Err != nil ||
			len(g.Batch) != len(w.Batch) {
			t.Fatalf("record %d = %+v, want %+v", i, g, w)
		}
		for j := range w.Batch {
			if g.Batch[j].ReplyTo != w.Batch[j].ReplyTo || !bytes.Equal(g.Batch[j].Payload, w.Batch[j].Payload) {
				t.Fatalf("record %d, request %d = %+v, want %+v", i, j, g.Batch[j], w.Batch[j])
			}
		}
	}
}

func payloads(rs []vpeer.Record) []string {
	var p []string
	for _, r := range rs {
		p = append(p, string(r.Payload))
	}
	return p
}
