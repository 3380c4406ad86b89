package gateway

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/momonga-project/momonga/vpeer"
)

// heldLog records appends and holds each until the test releases it.
type heldLog struct {
	mu      sync.Mutex
	records []vpeer.Record
	appends chan held // each append as it starts
	hold    func(vpeer.Record) bool
}

// held is an append waiting for the test to say what it returns.
type held struct {
	vpeer.Record
	release chan error
}

func newHeldLog() *heldLog {
	return &heldLog{appends: make(chan held, 100), hold: func(vpeer.Record) bool { return true }}
}

func (l *heldLog) Append(ctx context.Context, r vpeer.Record) (uint64, error) {
	h := held{r, make(chan error, 1)}
	l.appends <- h
	var err error
	if l.hold(r) {
		select {
		case err = <-h.release:
		case <-ctx.Done():
			return 0, ctx.Err()
		}
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if err == nil {
		l.records = append(l.records, r)
	}
	return uint64(len(l.records)), err
}

func (l *heldLog) next(t *testing.T) held {
	t.Helper()
	select {
	case h := <-l.appends:
		return h
	case <-time.After(5 * time.Second):
		t.Fatal("no append")
		return held{}
	}
}

func request(i int) vpeer.Record {
	return vpeer.Record{ID: fmt.Sprintf("h.%d.inbox", i), ReplyTo: fmt.Sprintf("inbox.%d", i), Payload: []byte(fmt.Sprintf("req %d", i))}
}

// send appends requests from..to-1 through b, each from a goroutine of its
// own, and returns their errors in order once all are back.
func send(b *batcher, from, to int) func() []error {
	errs := make([]error, to-from)
	var wg sync.WaitGroup
	for i := from; i < to; i++ {
		wg.Go(func() { errs[i-from] = b.append(context.Background(), request(i)) })
	}
	return func() []error { wg.Wait(); return errs }
}

func TestBatcherGroupsWhileAnAppendIsInFlight(t *testing.T) {
	l := newHeldLog()
	b := newBatcher(l, Batching{Max: 4, Wait: time.Hour})
	defer b.wait()

	// Idle: the first request goes at once, as the record it was.
	first := send(b, 0, 1)
	a0 := l.next(t)
	if a0.ID != "h.0.inbox" || a0.ReplyTo != "inbox.0" || len(a0.Batch) != 0 {
		t.Fatalf("a request to an idle log went as %+v", a0.Record)
	}
	// While it is in flight, the next ones wait: four make a record, the
	// fifth waits for the next append to finish.
	rest := send(b, 1, 6)
	full := l.next(t)
	if len(full.Batch) != 4 || full.ID == "" {
		t.Fatalf("the requests that gathered went as %+v", full.Record)
	}
	a0.release <- nil
	if errs := first(); errs[0] != nil {
		t.Fatal(errs[0])
	}
	full.release <- nil
	last := l.next(t)
	if len(last.Batch) != 0 {
		t.Fatalf("the request left over went as %+v", last.Record)
	}
	last.release <- errors.New("stream unavailable")
	errs := rest()
	failed := 0
	for _, err := range errs {
		if err != nil {
			failed++
		}
	}
	if failed != 1 {
		t.Fatalf("errors %v: want the one request whose append failed to fail", errs)
	}
	got := map[string]bool{}
	for _, r := range l.records {
		for _, q := range r.Requests() {
			got[q.ReplyTo] = true
		}
	}
	if len(got) != 5 {
		t.Fatalf("stored requests %v, want 5 of the 6", got)
	}
}

func TestBatcherWaitsNoLongerThanItsBound(t *testing.T) {
	l := newHeldLog()
	l.hold = func(r vpeer.Record) bool { return r.ID == "h.0.inbox" } // the first is stuck until released
	b := newBatcher(l, Batching{Max: 64, Wait: 300 * time.Millisecond})
	send(b, 0, 1)
	stuck := l.next(t)
	errs := send(b, 1, 3)()
	for _, err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if r := l.next(t); len(r.Batch) != 2 {
		t.Fatalf("the requests waiting behind a stuck append went as %+v", r.Record)
	}
	stuck.release <- nil
	b.wait()
}

// TestAsyncAppendsAreToldOfFailureAndBounded: a request appended without
// waiting hears when its record could not be stored, and no other; once
// the batcher holds as many requests as it may, the next waits for room.
func TestAsyncAppendsAreToldOfFailureAndBounded(t *testing.T) {
	l := newHeldLog()
	b := newBatcher(l, Batching{Max: 2, Wait: time.Hour})
	bound := maxQueued * 2 * (1 + 1)
	var mu sync.Mutex
	failed := map[int]error{}
	add := func(i int) {
		b.appendAsync(request(i), func(err error) {
			mu.Lock()
			defer mu.Unlock()
			failed[i] = err
		})
	}
	add(0) // goes at once, and is held
	first := l.next(t)
	for i := 1; i < bound; i++ {
		add(i) // each returns at once: room for them
	}
	// The batcher is full: one more waits.
	blocked := make(chan struct{})
	go func() {
		add(bound)
		close(blocked)
	}()
	select {
	case <-blocked:
		t.Fatalf("request %d was taken while %d were held", bound, bound)
	case <-time.After(100 * time.Millisecond):
	}
	first.release <- errors.New("stream unavailable")
	select {
	case <-blocked:
	case <-time.After(5 * time.Second):
		t.Fatal("no room after an append returned")
	}
	// Every later record is stored.
	go func() {
		for h := range l.appends {
			h.release <- nil
		}
	}()
	b.wait()
	mu.Lock()
	defer mu.Unlock()
	if len(failed) != 1 || failed[0] == nil {
		t.Fatalf("told of failure: %v; want request 0 alone", failed)
	}
	stored := 0
	for _, r := range l.records {
		stored += len(r.Requests())
	}
	if stored != bound {
		t.Fatalf("%d requests stored, want %d", stored, bound)
	}
}

// TestWaitWaitsForTheOpenGroup: requests gathered behind an append in
// flight, whose requesters did not wait, are appended before wait returns.
func TestWaitWaitsForTheOpenGroup(t *testing.T) {
	l := newHeldLog()
	l.hold = func(vpeer.Record) bool { return false }
	b := newBatcher(l, Batching{Max: 64, Wait: 50 * time.Millisecond, InFlight: 1})
	for i := range 5 {
		b.appendAsync(request(i), nil)
	}
	b.wait()
	stored := 0
	for _, r := range l.records {
		stored += len(r.Requests())
	}
	if stored != 5 {
		t.Fatalf("%d requests stored when wait returned, want 5", stored)
	}
}
