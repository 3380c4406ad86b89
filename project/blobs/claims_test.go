package blobs

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	wu "github.com/momonga-project/momonga/workunits"
)

// gatedPut counts the puts of the gateways sharing puts, and holds each
// until release is closed; fail makes the held puts fail.
type gatedPut struct {
	jetstream.ObjectStore
	puts    *atomic.Int32
	started chan<- struct{}
	release <-chan struct{}
	fail    bool
}

func (g *gatedPut) Put(ctx context.Context, meta jetstream.ObjectMeta, r io.Reader) (*jetstream.ObjectInfo, error) {
	g.puts.Add(1)
	g.started <- struct{}{}
	select {
	case <-g.release:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	if g.fail {
		_, _ = io.Copy(io.Discard, r)
		return nil, errors.New("nats: timeout")
	}
	return g.ObjectStore.Put(ctx, meta, r)
}

// gateways opens n Stores of one bucket, as n gateways of a cluster do,
// with claims expiring after ttl; their puts are counted in puts, and a put
// held until release is closed (each later one too).
func gateways(t *testing.T, n int, ttl time.Duration) (stores []*Store, gates []*gatedPut, started <-chan struct{}) {
	t.Helper()
	js := StartJetStream(t)
	var puts atomic.Int32
	ch := make(chan struct{}, 16)
	for range n {
		s, err := open(context.Background(), js, Bucket, 1, ttl)
		if err != nil {
			t.Fatal(err)
		}
		g := &gatedPut{ObjectStore: s.obs, puts: &puts, started: ch}
		s.obs = g
		stores, gates = append(stores, s), append(gates, g)
	}
	return stores, gates, ch
}

// Two hosts upload one output to two gateways at once: one puts the blob,
// the other waits and finds it stored.
func TestOneGatewayPutsABlobAtATime(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	stores, gates, started := gateways(t, 2, claimTTL)
	release := make(chan struct{})
	for _, g := range gates {
		g.release = release
	}
	blob := bytes.Repeat([]byte("momonga "), 100_000)
	var wg sync.WaitGroup
	errs := make([]error, len(stores))
	for i, s := range stores {
		wg.Go(func() { _, errs[i] = s.Put(ctx, blob) })
	}
	<-started
	// Both have looked for the blob and not found it by now; the second
	// one must not put it while the first one does.
	select {
	case <-started:
		t.Fatal("a second gateway put the blob while the first one was putting it")
	case <-time.After(200 * time.Millisecond):
	}
	close(release)
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("gateway %d: %v", i, err)
		}
	}
	if n := gates[0].puts.Load(); n != 1 {
		t.Errorf("%d puts, want 1", n)
	}
	for i, s := range stores {
		if b, err := s.Get(ctx, wu.HashOf(blob)); err != nil || !bytes.Equal(b, blob) {
			t.Errorf("gateway %d reads %d bytes, %v", i, len(b), err)
		}
	}
	// The claim is kept until it expires, so that a gateway that looked
	// before the blob was stored cannot put it again (next test); deleting
	// the blob frees it.
	h := wu.HashOf(blob)
	if _, err := stores[0].claims.Get(ctx, string(h)); err != nil {
		t.Errorf("the claim after the put: %v, want it kept", err)
	}
	if err := stores[1].Delete(ctx, h); err != nil {
		t.Fatal(err)
	}
	if _, err := stores[0].claims.Get(ctx, string(h)); !errors.Is(err, jetstream.ErrKeyNotFound) {
		t.Errorf("the claim after the blob was deleted: %v, want it gone", err)
	}
	if _, err := stores[1].Put(ctx, blob); err != nil {
		t.Fatalf("put again after the delete: %v", err)
	}
	if n := gates[0].puts.Load(); n != 2 {
		t.Errorf("%d puts, want 2: the first one and the one after the delete", n)
	}
}

// slowLook answers its first GetInfo only once hold is closed, telling
// asked when it has looked: a gateway that found no blob, then paused.
type slowLook struct {
	jetstream.ObjectStore
	looks atomic.Int32
	asked chan struct{}
	hold  chan struct{}
}

func (s *slowLook) GetInfo(ctx context.Context, name string, opts ...jetstream.GetObjectInfoOpt) (*jetstream.ObjectInfo, error) {
	info, err := s.ObjectStore.GetInfo(ctx, name, opts...)
	if s.looks.Add(1) == 1 {
		close(s.asked)
		<-s.hold
	}
	return info, err
}

// A gateway finds no blob, and claims it only after another has put it:
// it does not put it again.
func TestNoSecondPutAfterTheFirstIsDone(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	stores, gates, started := gateways(t, 2, claimTTL)
	open := make(chan struct{})
	close(open)
	gates[0].release, gates[1].release = open, open
	go func() {
		for range started {
		}
	}()
	late := &slowLook{ObjectStore: stores[1].obs, asked: make(chan struct{}), hold: make(chan struct{})}
	stores[1].obs = late
	blob := []byte("one output, computed twice")
	second := make(chan error, 1)
	go func() { _, err := stores[1].Put(ctx, blob); second <- err }()
	<-late.asked
	if _, err := stores[0].Put(ctx, blob); err != nil {
		t.Fatal(err)
	}
	close(late.hold)
	if err := <-second; err != nil {
		t.Fatal(err)
	}
	if n := gates[0].puts.Load(); n != 1 {
		t.Errorf("%d puts of one blob, want 1", n)
	}
}

// A put whose claim was taken over (it expired unrenewed, and another
// gateway claimed the blob) is cancelled, and leaves the new claim alone.
func TestLostClaimCancelsThePut(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	stores, gates, started := gateways(t, 2, time.Second)
	held := make(chan struct{})
	gates[0].release = held
	defer close(held)
	blob := []byte("a blob")
	h := wu.HashOf(blob)
	first := make(chan error, 1)
	go func() { _, err := stores[0].Put(ctx, blob); first <- err }()
	<-started
	// The claim expires and another gateway takes it.
	if err := stores[1].claims.Purge(ctx, string(h)); err != nil {
		t.Fatal(err)
	}
	rev, err := stores[1].claims.Create(ctx, string(h), []byte("other"))
	if err != nil {
		t.Fatal(err)
	}
	if err := <-first; !errors.Is(err, errClaimLost) {
		t.Fatalf("the put whose claim was taken: %v, want it cancelled", err)
	}
	if e, err := stores[1].claims.Get(ctx, string(h)); err != nil || e.Revision() != rev {
		t.Fatalf("the other gateway's claim after the first gave up: %v, %v; want revision %d kept", e, err, rev)
	}
}

func TestHeldByAnother(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want bool
	}{
		{jetstream.ErrKeyExists, true},
		{fmt.Errorf("create: %w", &jetstream.APIError{Code: 400, ErrorCode: jetstream.JSErrCodeStreamWrongLastSequenceConstant}), true},
		{&jetstream.APIError{Code: 400, ErrorCode: jetstream.JSErrCodeStreamWrongLastSequence}, true},
		{&jetstream.APIError{Code: 503, ErrorCode: 10008}, false}, // no cluster leader
		{context.DeadlineExceeded, false},
	} {
		if got := heldByAnother(tc.err); got != tc.want {
			t.Errorf("heldByAnother(%v) = %v, want %v", tc.err, got, tc.want)
		}
	}
}

// A put that fails gives its claim up, and one that never ends (its
// process died) loses it when it expires: the waiting gateway puts the
// blob.
func TestWaitingGatewayTakesOver(t *testing.T) {
	for _, tc := range []struct {
		name string
		ttl  time.Duration
		fail bool
	}{
		{"PutFailed", claimTTL, true},
		{"ClaimExpired", time.Second, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			stores, gates, started := gateways(t, 2, tc.ttl)
			blob := bytes.Repeat([]byte("momonga "), 1000)
			h := wu.HashOf(blob)

			first := make(chan error, 1)
			held := make(chan struct{})
			gates[0].release, gates[0].fail = held, tc.fail
			if tc.fail {
				go func() { _, err := stores[0].Put(ctx, blob); first <- err }()
				<-started
			} else if _, err := stores[0].claims.Create(ctx, string(h), nil); err != nil {
				// The claim of a process that stopped: no renewal, no
				// deletion.
				t.Fatal(err)
			}
			closed := make(chan struct{})
			close(closed)
			gates[1].release = closed
			second := make(chan error, 1)
			go func() { _, err := stores[1].Put(ctx, blob); second <- err }()
			select {
			case <-started:
				t.Fatal("the second gateway put the blob while the claim was held")
			case <-time.After(200 * time.Millisecond):
			}
			if tc.fail {
				close(held)
				if err := <-first; err == nil {
					t.Fatal("the failed put: no error")
				}
			}
			if err := <-second; err != nil {
				t.Fatalf("the waiting gateway: %v", err)
			}
			if b, err := stores[1].Get(ctx, h); err != nil || !bytes.Equal(b, blob) {
				t.Fatalf("stored blob: %d bytes, %v", len(b), err)
			}
		})
	}
}

// A claim is renewed while a put takes longer than the claim's life.
func TestClaimRenewedDuringALongPut(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	stores, gates, started := gateways(t, 2, time.Second)
	held := make(chan struct{})
	gates[0].release = held
	closed := make(chan struct{})
	close(closed)
	gates[1].release = closed
	blob := []byte("a slow blob")
	first := make(chan error, 1)
	go func() { _, err := stores[0].Put(ctx, blob); first <- err }()
	<-started
	second := make(chan error, 1)
	go func() { _, err := stores[1].Put(ctx, blob); second <- err }()
	select {
	case <-started:
		t.Fatal("the second gateway put the blob: the first one's claim expired while its put ran")
	case <-time.After(2500 * time.Millisecond):
	}
	close(held)
	for _, ch := range []chan error{first, second} {
		if err := <-ch; err != nil {
			t.Fatal(err)
		}
	}
	if n := gates[0].puts.Load(); n != 1 {
		t.Errorf("%d puts, want 1", n)
	}
}

// answersLost applies the first Update and Create of its claims but
// answers them as a time-out, as when an election eats the answer.
type answersLost struct {
	jetstream.KeyValue
	updates, creates atomic.Int32
}

func (a *answersLost) Update(ctx context.Context, key string, value []byte, rev uint64) (uint64, error) {
	r, err := a.KeyValue.Update(ctx, key, value, rev)
	if a.updates.Add(1) == 1 && err == nil {
		return 0, errors.New("nats: timeout")
	}
	return r, err
}

func (a *answersLost) Create(ctx context.Context, key string, value []byte, opts ...jetstream.KVCreateOpt) (uint64, error) {
	r, err := a.KeyValue.Create(ctx, key, value, opts...)
	if a.creates.Add(1) == 1 && err == nil {
		return 0, errors.New("nats: timeout")
	}
	return r, err
}

// A claim whose Create and first renewal were applied but not answered is
// still the putter's: the put goes on through renewals and stores the
// blob, and the claim ends marked stored.
func TestClaimSurvivesLostAnswers(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	stores, gates, started := gateways(t, 1, 1200*time.Millisecond)
	kv := &answersLost{KeyValue: stores[0].claims}
	stores[0].claims = kv
	held := make(chan struct{})
	gates[0].release = held
	blob := []byte("a blob")
	h := wu.HashOf(blob)
	done := make(chan error, 1)
	go func() { _, err := stores[0].Put(ctx, blob); done <- err }()
	<-started
	time.Sleep(1500 * time.Millisecond) // several renewals, the first one unanswered
	close(held)
	if err := <-done; err != nil {
		t.Fatalf("the put: %v", err)
	}
	if kv.updates.Load() < 2 {
		t.Fatalf("%d renewals, want the put to outlive one unanswered", kv.updates.Load())
	}
	e, err := kv.KeyValue.Get(ctx, string(h))
	if err != nil || string(e.Value()) != string(storedClaim) {
		t.Fatalf("the claim after the put: %v, %v; want it marked stored", e, err)
	}
}

// Deleting a blob frees its claim only once the blob is stored: the
// claim of a put under way stays.
func TestDeleteLeavesAClaimUnderWay(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	stores, gates, started := gateways(t, 2, claimTTL)
	held := make(chan struct{})
	gates[0].release = held
	blob := []byte("a blob")
	h := wu.HashOf(blob)
	done := make(chan error, 1)
	go func() { _, err := stores[0].Put(ctx, blob); done <- err }()
	<-started
	if err := stores[1].Delete(ctx, h); err != nil {
		t.Fatal(err)
	}
	if e, err := stores[1].claims.Get(ctx, string(h)); err != nil || string(e.Value()) == string(storedClaim) {
		t.Fatalf("the claim of the put under way after the delete: %v, %v; want it kept", e, err)
	}
	close(held)
	if err := <-done; err != nil {
		t.Fatalf("the put, its blob deleted while it ran: %v", err)
	}
	if n := gates[0].puts.Load(); n != 1 {
		t.Fatalf("%d puts", n)
	}
}
