package sched

import (
	"bytes"
	"testing"
	"time"

	wu "github.com/momonga-project/momonga/workunits"
)

func (h *harness) ckpt(host string, a wu.Assignment, c wu.CheckpointRef) *wu.Error {
	return h.req(host, wu.OpCkpt, wu.CheckpointReport{V: 1, Seq: 1, Task: a.Task, App: a.AppHash, Checkpoint: c}, nil)
}

func ref(name string, seq uint64, base wu.Hash) wu.CheckpointRef {
	c := wu.CheckpointRef{Hash: wu.HashOf([]byte(name)), Size: 100, Seq: seq, Progress: float64(seq) / 10}
	if base != "" {
		c.Base, c.BaseSize = base, 100
	}
	return c
}

// TestCheckpointFollowsTheTask: a task's newest checkpoint goes with it to
// the next host when its first host departs, older ones become garbage, and
// a checkpoint from a host that does not hold the task is refused.
func TestCheckpointFollowsTheTask(t *testing.T) {
	h := newHarness(t)
	h.setup(1, 1, 1)
	h.hello("a")
	h.hello("b")
	as := h.work("a", 1)
	if len(as) != 1 || as[0].Checkpoint != nil {
		t.Fatalf("first assignment: %+v", as)
	}
	a := as[0]
	full := ref("full1", 1, "")
	h.must(h.ckpt("a", a, full))
	h.must(h.ckpt("a", a, ref("delta2", 2, full.Hash)))
	h.must(h.ckpt("a", a, ref("delta3", 3, full.Hash)))
	if g := h.m.Garbage(); len(g) != 1 || g[0] != wu.HashOf([]byte("delta2")) {
		t.Fatalf("garbage after two deltas on one base: %v", g)
	}
	if e := h.ckpt("a", a, ref("old", 2, "")); e == nil || e.Code != wu.CodeConflict {
		t.Errorf("older checkpoint: %v", e)
	}
	if e := h.ckpt("a", a, ref("orphan", 4, wu.HashOf([]byte("delta2")))); e == nil || e.Code != wu.CodeConflict {
		t.Errorf("delta against a base the project is deleting: %v", e)
	}
	if e := h.ckpt("b", a, ref("thief", 9, "")); e == nil || e.Code != wu.CodeNotAssigned {
		t.Errorf("checkpoint from a host without the task: %v", e)
	}
	wrongApp := wu.CheckpointReport{V: 1, Seq: 1, Task: a.Task, App: wu.HashOf([]byte("other")), Checkpoint: ref("x", 5, "")}
	if e := h.req("a", wu.OpCkpt, wrongApp, nil); e == nil || e.Code != wu.CodeBadRequest {
		t.Errorf("checkpoint of another app: %v", e)
	}

	// Host a departs: its lease runs out, and b gets the task with the newest
	// checkpoint.
	h.pass(31 * time.Second)
	bs := h.work("b", 1)
	if len(bs) != 1 || bs[0].Task != a.Task || bs[0].Checkpoint == nil || bs[0].Checkpoint.Seq != 3 || bs[0].Checkpoint.Base != full.Hash {
		t.Fatalf("reassigned task without its checkpoint: %+v", bs)
	}
	if e := h.ckpt("a", a, ref("late", 4, "")); e == nil {
		t.Error("the departed host may still checkpoint the task")
	}
	// b continues the chain, then writes a full checkpoint: the old chain is
	// garbage.
	h.must(h.ckpt("b", bs[0], ref("delta4", 4, full.Hash)))
	h.must(h.ckpt("b", bs[0], ref("full5", 5, "")))
	garbage := map[wu.Hash]bool{}
	for _, g := range h.m.Garbage() {
		garbage[g] = true
	}
	for _, n := range []string{"delta2", "delta3", "delta4", "full1"} {
		if !garbage[wu.HashOf([]byte(n))] {
			t.Errorf("%s is not garbage", n)
		}
	}
	// A restored snapshot carries the checkpoints.
	r := New(Config{})
	if err := r.Restore(bytes.NewReader(h.snapshot())); err != nil {
		t.Fatal(err)
	}
	if len(r.Garbage()) != len(h.m.Garbage()) {
		t.Error("snapshot lost the garbage list")
	}
	// The result drops the last checkpoint too; deleting empties the list.
	h.must(h.report("b", bs[0].Task, "1\n"))
	all := h.m.Garbage()
	if len(all) != 5 {
		t.Fatalf("garbage after the result: %d blobs, want 5", len(all))
	}
	h.must(h.req("project", wu.OpCkptDropped, wu.CheckpointsDropped{V: 1, Hashes: all[:3]}, nil))
	if left := h.m.Garbage(); len(left) != 2 || left[0] != all[3] {
		t.Errorf("garbage after dropping three: %v", left)
	}
}

// TestDeltaAgainstAnUnreportedBase: on a slow link a host reports the
// newest checkpoint it has once an upload ends, which may be a delta against
// a full checkpoint it wrote meanwhile and never reported. It is taken (the
// gateway has checked the base is stored); the checkpoint it replaces,
// base and all, becomes garbage, and the task's next host resumes from it.
func TestDeltaAgainstAnUnreportedBase(t *testing.T) {
	h := newHarness(t)
	h.setup(1, 1, 1)
	h.hello("a")
	h.hello("b")
	a := h.work("a", 1)[0]
	h.must(h.ckpt("a", a, ref("full1", 1, "")))
	h.must(h.ckpt("a", a, ref("delta2", 2, wu.HashOf([]byte("full1")))))
	full4 := wu.HashOf([]byte("full4"))
	h.must(h.ckpt("a", a, ref("delta5", 5, full4)))
	garbage := map[wu.Hash]bool{}
	for _, g := range h.m.Garbage() {
		garbage[g] = true
	}
	if len(garbage) != 2 || !garbage[wu.HashOf([]byte("full1"))] || !garbage[wu.HashOf([]byte("delta2"))] {
		t.Fatalf("garbage: %v; want the replaced chain, full1 and delta2", h.m.Garbage())
	}
	h.pass(31 * time.Second)
	bs := h.work("b", 1)
	if len(bs) != 1 || bs[0].Checkpoint == nil || bs[0].Checkpoint.Seq != 5 || bs[0].Checkpoint.Base != full4 {
		t.Fatalf("the next host got %+v; want checkpoint 5 on full4", bs)
	}
}

func TestSubmitCarriesCheckpointInterval(t *testing.T) {
	h := newHarness(t)
	h.must(h.req("adm:test", wu.OpAddApp, wu.AddApp{V: 1, Name: "mandelr", Hash: wu.HashOf([]byte("app")), Size: 3}, nil))
	h.must(h.req("adm:test", wu.OpSubmit, wu.Submit{V: 1, Batch: "b", App: "mandelr", CheckpointSeconds: 5, Units: []wu.UnitSpec{{}}}, nil))
	h.hello("a")
	if as := h.work("a", 1); len(as) != 1 || as[0].CheckpointSeconds != 5 {
		t.Fatalf("assignment: %+v", as)
	}
}
