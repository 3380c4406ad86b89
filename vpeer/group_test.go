package vpeer_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/momonga-project/momonga/vpeer"
	"github.com/momonga-project/momonga/vpeer/vpeertest"
)

// lostAnswers is a registry that stores writes but, while armed, loses the
// answers to some of them, as a replicated registry does when its leader
// stops with a write in flight.
type lostAnswers struct {
	vpeer.MemRegistry
	lose   atomic.Int32 // how many more stored writes fail
	answer error        // what such a write returns
	stored atomic.Int32 // writes stored and answered
}

func (r *lostAnswers) Create(ctx context.Context, key string, value []byte) (uint64, error) {
	return r.answered(r.MemRegistry.Create(ctx, key, value))
}

func (r *lostAnswers) Update(ctx context.Context, key string, value []byte, rev uint64) (uint64, error) {
	return r.answered(r.MemRegistry.Update(ctx, key, value, rev))
}

func (r *lostAnswers) answered(rev uint64, err error) (uint64, error) {
	if err != nil {
		return rev, err
	}
	if r.lose.Add(-1) >= 0 {
		return 0, r.answer
	}
	r.stored.Add(1)
	return rev, nil
}

// A renewal whose answer is lost (a time-out, or a retry that conflicts
// with its own first attempt) is no takeover: the members keep their
// slots and the lease holder its lease. A slot another member took still
// stops the member that held it.
func TestGroupKeepsSlotsWhoseRenewalsLostTheirAnswer(t *testing.T) {
	for _, answer := range []error{context.DeadlineExceeded, fmt.Errorf("retried: %w", vpeer.ErrConflict)} {
		t.Run(answer.Error(), func(t *testing.T) {
			reg := &lostAnswers{answer: answer}
			env := vpeertest.Env{Log: vpeer.NewMemLog(), Snapshots: &vpeer.MemSnapshots{}, Registry: reg}
			g := vpeertest.StartGroup(t, env, vpeer.GroupConfig{Name: "g", Size: 2, TickInterval: 10 * time.Millisecond})
			before := vpeertest.WaitGroupReady(t, 2, g)
			holder := g.Status(context.Background()).Lease

			// Two slots and the lease: every write of three heartbeats.
			reg.lose.Store(6)
			vpeertest.CheckFor(t, vpeertest.Timeout, time.Millisecond, func() error {
				if n := reg.lose.Load(); n > 0 {
					return fmt.Errorf("%d answers still to lose", n)
				}
				return nil
			})
			// Then enough heartbeats for a conflict to show, and more.
			stored := reg.stored.Load()
			vpeertest.CheckFor(t, vpeertest.Timeout, time.Millisecond, func() error {
				if n := reg.stored.Load() - stored; n < 12 {
					return fmt.Errorf("%d writes answered since, want 12", n)
				}
				return nil
			})
			after := vpeertest.WaitGroupReady(t, 2, g)
			for slot, m := range before {
				if after[slot].ID != m.ID {
					t.Errorf("slot %d: member %s replaced by %s, though nobody took its slot", slot, m.ID, after[slot].ID)
				}
			}
			if now := g.Status(context.Background()).Lease; now != holder {
				t.Errorf("lease moved from %s to %s, though nobody took it", holder, now)
			}

			// Another member takes slot 0: the one there stops.
			ctx := context.Background()
			v, _ := json.Marshal(map[string]string{"member": "elsewhere/1", "process": "elsewhere"})
			vpeertest.CheckFor(t, vpeertest.Timeout, time.Millisecond, func() error {
				_, rev, err := reg.Get(ctx, "g.slot.0")
				if err == nil {
					_, err = reg.MemRegistry.Update(ctx, "g.slot.0", v, rev)
				}
				if err != nil && !errors.Is(err, vpeer.ErrConflict) {
					t.Fatal(err)
				}
				return err // a renewal came first: again
			})
			vpeertest.CheckFor(t, vpeertest.Timeout, time.Millisecond, func() error {
				if m, ok := vpeertest.Members(g)[0]; ok && m.ID == before[0].ID {
					return fmt.Errorf("member %s still runs in slot 0, taken by another", m.ID)
				}
				return nil
			})
		})
	}
}
