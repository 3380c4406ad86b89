package vpeer_test

import (
	"context"
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
