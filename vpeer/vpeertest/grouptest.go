package vpeertest

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/momonga-project/momonga/vpeer"
)

// Env is what a group runs on: a log, a snapshot store and a registry, all
// shared by the group's processes.
type Env struct {
	Log       vpeer.Log
	Snapshots vpeer.SnapshotStore
	Registry  vpeer.Registry
}

// Timing of the groups in these tests: quick, yet slow enough that a busy
// machine does not make a live member look dead.
const (
	Heartbeat = 50 * time.Millisecond
	Lapse     = 400 * time.Millisecond
)

// RunningGroup is one process's part of a group, running until the test
// ends or Stop is called.
type RunningGroup struct {
	*vpeer.Group
	stop func() error
}

// Stop stops the group's Run, and with it its members, and waits for them.
func (rg *RunningGroup) Stop() error { return rg.stop() }

// StartGroup runs a group of KV machines over env with cfg (whose Log,
// Snapshots and Registry it sets, and NewMachine, Heartbeat and Lapse when
// zero).
func StartGroup(t testing.TB, env Env, cfg vpeer.GroupConfig) *RunningGroup {
	t.Helper()
	cfg.Log, cfg.Snapshots, cfg.Registry = env.Log, env.Snapshots, env.Registry
	if cfg.NewMachine == nil {
		cfg.NewMachine = func() vpeer.StateMachine { return NewKV() }
	}
	if cfg.Heartbeat == 0 {
		cfg.Heartbeat, cfg.Lapse = Heartbeat, Lapse
	}
	if cfg.Logger == nil {
		cfg.Logger = TestLogger(t)
	}
	g, err := vpeer.NewGroup(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- g.Run(ctx) }()
	rg := &RunningGroup{Group: g}
	rg.stop = sync.OnceValue(func() error {
		cancel()
		select {
		case err := <-done:
			return err
		case <-time.After(Timeout):
			return errors.New("group did not stop")
		}
	})
	t.Cleanup(func() {
		if err := rg.Stop(); err != nil {
			t.Errorf("group Run: %v", err)
		}
	})
	return rg
}

// Members returns the members of all the groups' processes, by slot.
func Members(groups ...*RunningGroup) map[int]vpeer.MemberStatus {
	ms := make(map[int]vpeer.MemberStatus)
	for _, g := range groups {
		for _, m := range g.Status(context.Background()).Members {
			ms[m.Slot] = m
		}
	}
	return ms
}

// WaitGroupReady waits until the processes together run size ready
// members, one of them holding the lease, and returns them by slot.
func WaitGroupReady(t testing.TB, size int, groups ...*RunningGroup) map[int]vpeer.MemberStatus {
	t.Helper()
	var ms map[int]vpeer.MemberStatus
	CheckFor(t, 2*Timeout, 10*time.Millisecond, func() error {
		ms = Members(groups...)
		ready, leading := 0, 0
		for _, m := range ms {
			if m.Ready {
				ready++
			}
			if m.Leading {
				leading++
			}
		}
		if len(ms) != size || ready != size || leading != 1 {
			return fmt.Errorf("%d members, %d ready, %d holding the lease; want %d, %d, 1", len(ms), ready, leading, size, size)
		}
		return nil
	})
	return ms
}

// SameState marks a snapshot point and waits until every member of the
// groups has recorded it, with one hash: they applied the same log. It
// returns the hash and the mark's sequence number.
func SameState(t testing.TB, l vpeer.Log, groups ...*RunningGroup) (string, uint64) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), Timeout)
	defer cancel()
	mark, err := vpeer.MarkSnapshot(ctx, l)
	if err != nil {
		t.Fatal(err)
	}
	var hash string
	CheckFor(t, Timeout, 10*time.Millisecond, func() error {
		hashes := map[string][]string{}
		for _, m := range Members(groups...) {
			i := slices.IndexFunc(m.Checkpoints, func(c vpeer.Checkpoint) bool { return c.Seq == mark })
			if i < 0 {
				return fmt.Errorf("member %s has no hash at %d (applied %d)", m.ID, mark, m.Applied)
			}
			hashes[m.Checkpoints[i].Hash] = append(hashes[m.Checkpoints[i].Hash], m.ID)
		}
		if len(hashes) != 1 {
			return fmt.Errorf("members disagree at %d: %v", mark, hashes)
		}
		for h := range hashes {
			hash = h
		}
		return nil
	})
	return hash, mark
}

// WaitStored waits until s holds a snapshot at seq or later.
func WaitStored(t testing.TB, s vpeer.SnapshotStore, seq uint64) {
	t.Helper()
	CheckFor(t, Timeout, 10*time.Millisecond, func() error {
		list, err := s.List(context.Background())
		if err != nil {
			return err
		}
		if len(list) == 0 || list[len(list)-1].Seq < seq {
			return fmt.Errorf("snapshots stored: %v; want one at %d or later", list, seq)
		}
		return nil
	})
}

// TestGroup checks vpeer.Group over the environments newEnv returns (new
// empty ones at each call): slots filled, one lease holder, every member
// answering, members replaced when they die alone or with their process.
func TestGroup(t *testing.T, newEnv func(t *testing.T) Env) {
	t.Run("OutputsOncePerProcess", func(t *testing.T) {
		env := newEnv(t)
		var (
			mu   sync.Mutex
			seen = map[uint64]int{}
		)
		g := StartGroup(t, env, vpeer.GroupConfig{Name: "g", Size: 3, Outputs: func(seq uint64, outs []any) {
			mu.Lock()
			defer mu.Unlock()
			seen[seq] += len(outs)
		}})
		WaitGroupReady(t, 3, g)
		var sets []uint64
		for i := range 10 {
			sets = append(sets, Append(t, env.Log, vpeer.Record{Payload: []byte(fmt.Sprintf("set k%d %d", i, i))}))
			Append(t, env.Log, vpeer.Record{Payload: []byte("add x 1")})
		}
		// A member killed and replaced replays records whose outputs this
		// process has handed on already: they are not handed on again.
		ms := g.Members()
		if !g.Kill(ms[0].ID()) {
			t.Fatal("no member to kill")
		}
		WaitGroupReady(t, 3, g)
		sets = append(sets, Append(t, env.Log, vpeer.Record{Payload: []byte("set last 1")}))
		CheckFor(t, Timeout, 5*time.Millisecond, func() error {
			mu.Lock()
			defer mu.Unlock()
			if len(seen) != len(sets) {
				return fmt.Errorf("outputs of %d records, want %d", len(seen), len(sets))
			}
			return nil
		})
		SameState(t, env.Log, g)
		mu.Lock()
		defer mu.Unlock()
		for _, seq := range sets {
			if seen[seq] != 1 {
				t.Errorf("record %d: %d outputs handed on, want 1", seq, seen[seq])
			}
		}
	})

	t.Run("FillsSlotsOneLeaseAllAnswer", func(t *testing.T) {
		env := newEnv(t)
		replies := &Replies{}
		g := StartGroup(t, env, vpeer.GroupConfig{Name: "g", Size: 3, Reply: replies.Send, TickInterval: 10 * time.Millisecond})
		WaitGroupReady(t, 3, g)
		for i := range 5 {
			Append(t, env.Log, vpeer.Record{ID: fmt.Sprintf("r%d", i), ReplyTo: fmt.Sprintf("r.%d", i), Payload: []byte("add x 1")})
		}
		CheckFor(t, Timeout, 5*time.Millisecond, func() error {
			per := map[string]int{}
			for _, r := range replies.All() {
				per[r.Subject]++
			}
			for i := range 5 {
				if n := per[fmt.Sprintf("r.%d", i)]; n != 3 {
					return fmt.Errorf("request %d answered %d times, want once by each member", i, n)
				}
			}
			return nil
		})
		// Only the lease holder ticks: ticks are in the log, none twice.
		CheckFor(t, Timeout, 5*time.Millisecond, func() error {
			ticks := map[string]bool{}
			for _, r := range ReadAll(t, env.Log) {
				if !r.Tick.IsZero() {
					if ticks[r.ID] {
						return fmt.Errorf("tick %s twice", r.ID)
					}
					ticks[r.ID] = true
				}
			}
			if len(ticks) < 2 {
				return fmt.Errorf("%d ticks in the log", len(ticks))
			}
			return nil
		})
		SameState(t, env.Log, g)
		spec := vpeer.GroupSpec{Size: 3, Params: []byte(`{"x":1}`)}
		if err := vpeer.WriteSpec(context.Background(), env.Registry, "g", spec); err != nil {
			t.Fatal(err)
		}
		if got, err := vpeer.ReadSpec(context.Background(), env.Registry, "g"); err != nil || got.Size != 3 || string(got.Params) != `{"x":1}` {
			t.Fatalf("ReadSpec = %+v, %v", got, err)
		}
		if _, err := vpeer.ReadSpec(context.Background(), env.Registry, "nothing"); err == nil {
			t.Fatal("ReadSpec of a group never created succeeded")
		}
	})

	t.Run("KilledMembersReplaced", func(t *testing.T) {
		env := newEnv(t)
		g := StartGroup(t, env, vpeer.GroupConfig{Name: "g", Size: 3, TickInterval: 10 * time.Millisecond, SnapshotEvery: 20})
		ms := WaitGroupReady(t, 3, g)
		for round := range 3 {
			for i := range 30 {
				Append(t, env.Log, vpeer.Record{Payload: fmt.Appendf(nil, "add k%d %d", i%4, round)})
			}
			_, mark := SameState(t, env.Log, g)
			WaitStored(t, env.Snapshots, mark)
			// Kill the lease holder in one round, another member in the next.
			var victim vpeer.MemberStatus
			for _, m := range ms {
				if m.Leading == (round%2 == 0) {
					victim = m
				}
			}
			if !g.Kill(victim.ID) {
				t.Fatalf("Kill(%s) found no member", victim.ID)
			}
			CheckFor(t, 2*Timeout, 10*time.Millisecond, func() error {
				ms = Members(g)
				if m := ms[victim.Slot]; m.ID == victim.ID || !m.Ready {
					return fmt.Errorf("slot %d: %+v, waiting for a new member in place of %s", victim.Slot, m, victim.ID)
				}
				return nil
			})
			ms = WaitGroupReady(t, 3, g)
			if m := ms[victim.Slot]; m.Restored == nil {
				t.Fatalf("member %s replacing %s replayed the whole log; want it restored from a snapshot", m.ID, victim.ID)
			}
			SameState(t, env.Log, g)
		}
	})

	t.Run("SpareReplacesACrashedProcess", func(t *testing.T) {
		env := newEnv(t)
		// No ticks: the state changes only with the records appended here.
		a := StartGroup(t, env, vpeer.GroupConfig{Name: "g", Size: 3, Process: "a", SnapshotEvery: 20})
		WaitGroupReady(t, 3, a)
		spare := StartGroup(t, env, vpeer.GroupConfig{Name: "g", Size: 3, Capacity: 3, Process: "spare", SnapshotEvery: 20})
		for i := range 50 {
			Append(t, env.Log, vpeer.Record{Payload: fmt.Appendf(nil, "add k%d 1", i%4)})
		}
		before, mark := SameState(t, env.Log, a)
		WaitStored(t, env.Snapshots, mark)
		if n := len(spare.Status(context.Background()).Members); n != 0 {
			t.Fatalf("the spare runs %d members while the group is full", n)
		}
		if !a.Leading() || spare.Leading() {
			t.Fatalf("Leading: %v for the process holding the lease, %v for the spare", a.Leading(), spare.Leading())
		}
		if err := a.Stop(); err != nil {
			t.Fatal(err)
		}
		ms := WaitGroupReady(t, 3, spare)
		for _, m := range ms {
			if m.Process != "spare" {
				t.Fatalf("member %s runs in %s", m.ID, m.Process)
			}
		}
		// The once-only side effects outside the members follow the lease.
		CheckFor(t, 2*Timeout, 10*time.Millisecond, func() error {
			if a.Leading() || !spare.Leading() {
				return fmt.Errorf("Leading: %v for the stopped process, %v for the spare holding the lease", a.Leading(), spare.Leading())
			}
			return nil
		})
		after, _ := SameState(t, env.Log, spare)
		if after != before {
			t.Fatalf("state changed across the replacement with no new records: %s → %s", before, after)
		}
	})
}

// TestRegistry checks the behaviour every vpeer.Registry must show.
func TestRegistry(t *testing.T, reg vpeer.Registry) {
	ctx := context.Background()
	if _, _, err := reg.Get(ctx, "g.none"); !errors.Is(err, vpeer.ErrNotFound) {
		t.Fatalf("Get of a missing key = %v, want ErrNotFound", err)
	}
	r1, err := reg.Create(ctx, "g.k", []byte("one"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := reg.Create(ctx, "g.k", []byte("again")); !errors.Is(err, vpeer.ErrConflict) {
		t.Fatalf("second Create = %v, want ErrConflict", err)
	}
	r2, err := reg.Update(ctx, "g.k", []byte("two"), r1)
	if err != nil || r2 <= r1 {
		t.Fatalf("Update = %d, %v; want a revision after %d", r2, err, r1)
	}
	if _, err := reg.Update(ctx, "g.k", []byte("stale"), r1); !errors.Is(err, vpeer.ErrConflict) {
		t.Fatalf("Update at an old revision = %v, want ErrConflict", err)
	}
	if _, err := reg.Update(ctx, "g.missing", []byte("x"), r2); !errors.Is(err, vpeer.ErrConflict) {
		t.Fatalf("Update of a missing key = %v, want ErrConflict", err)
	}
	if v, rev, err := reg.Get(ctx, "g.k"); err != nil || string(v) != "two" || rev != r2 {
		t.Fatalf("Get = %q at %d, %v; want two at %d", v, rev, err, r2)
	}
}
