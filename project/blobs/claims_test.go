package blobs

import (
	"bytes"
	"context"
	"errors"
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
	if _, err := stores[0].claims.Get(ctx, string(wu.HashOf(blob))); !errors.Is(err, jetstream.ErrKeyNotFound) {
		t.Errorf("the claim after the put: %v, want it deleted", err)
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
