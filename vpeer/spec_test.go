package vpeer_test

import (
	"context"
	"errors"
	"sync"
	"testing"

	"github.com/momonga-project/momonga/vpeer"
)

// Processes that start a group together with different specs all end up
// with the first one recorded.
func TestEnsureSpecAgreesOnTheFirst(t *testing.T) {
	var reg vpeer.MemRegistry
	ctx := context.Background()
	got := make([]vpeer.GroupSpec, 8)
	var wg sync.WaitGroup
	for i := range got {
		wg.Go(func() {
			spec, err := vpeer.EnsureSpec(ctx, &reg, "g", vpeer.GroupSpec{Size: i + 1})
			if err != nil {
				t.Error(err)
			}
			got[i] = spec
		})
	}
	wg.Wait()
	stored, err := vpeer.ReadSpec(ctx, &reg, "g")
	if err != nil {
		t.Fatal(err)
	}
	for i, s := range got {
		if s.Size != stored.Size {
			t.Errorf("process %d got size %d, the registry holds %d", i, s.Size, stored.Size)
		}
	}
	again, err := vpeer.EnsureSpec(ctx, &reg, "g", vpeer.GroupSpec{Size: 99})
	if err != nil || again.Size != stored.Size {
		t.Errorf("a later process got %+v, %v; want size %d", again, err, stored.Size)
	}
}

// laggingRegistry is a replicated registry whose replica answering reads
// has not yet caught up: its first misses reads find nothing.
type laggingRegistry struct {
	vpeer.Registry
	misses int
}

func (r *laggingRegistry) Get(ctx context.Context, key string) ([]byte, uint64, error) {
	if r.misses > 0 {
		r.misses--
		return nil, 0, vpeer.ErrNotFound
	}
	return r.Registry.Get(ctx, key)
}

// A process that loses the race to write a group's spec, and then reads a
// replica that lags, waits for the spec rather than calling the group
// unknown.
func TestEnsureSpecWaitsForALaggingReplica(t *testing.T) {
	ctx := context.Background()
	mem := &vpeer.MemRegistry{}
	if _, err := vpeer.EnsureSpec(ctx, mem, "acct", vpeer.GroupSpec{Size: 3}); err != nil {
		t.Fatal(err)
	}
	spec, err := vpeer.EnsureSpec(ctx, &laggingRegistry{Registry: mem, misses: 3}, "acct", vpeer.GroupSpec{Size: 5})
	if err != nil || spec.Size != 3 {
		t.Fatalf("spec %+v, %v; want the first one, size 3", spec, err)
	}
	if _, err := vpeer.ReadSpec(ctx, mem, "nothing"); !errors.Is(err, vpeer.ErrNoGroup) {
		t.Fatalf("reading an unknown group: %v", err)
	}
}
