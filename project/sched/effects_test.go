package sched

import (
	"fmt"
	"slices"
	"testing"
	"time"

	wu "github.com/momonga-project/momonga/workunits"
)

// take returns the outputs applied since the last call.
func (h *harness) take() []any {
	outs := h.outs
	h.outs = nil
	return outs
}

// TestApplyReportsWhatHappened: each effect the process around the
// scheduler acts on comes out of Apply as a typed output of the entry that
// caused it, and entries without one (work, beats, ticks) report nothing.
func TestApplyReportsWhatHappened(t *testing.T) {
	h := newHarness(t)
	h.addUser("ann", "")
	a1 := h.attachHost("ann", 1)
	h.addUser("bob", "")
	b1 := h.attachHost("bob", 2)
	h.addApp("float", wu.Policy{Replication: 2, Quorum: 2, Tolerance: wu.Tolerance{Rel: 1e-6}})
	h.submitUnits("float", "b", 2, 0)
	h.take()

	// Work and beats change the state but ask nothing of the process.
	x, y := h.work(a1, 1)[0], h.work(b1, 1)[0]
	h.beat(a1, x.Task, 0.5)
	h.pass(2 * time.Second)
	if outs := h.take(); len(outs) != 0 {
		t.Fatalf("work, beats and ticks output %v", outs)
	}

	// A checkpoint replaced by a newer one becomes garbage.
	first := ref("first", 1, "")
	h.must(h.ckpt(a1, x, first))
	h.must(h.ckpt(a1, x, ref("second", 2, "")))
	if outs, want := h.take(), []any{CheckpointsUnneeded{[]wu.Hash{first.Hash}}}; fmt.Sprint(outs) != fmt.Sprint(want) {
		t.Fatalf("checkpoint replaced: outputs %v, want %v", outs, want)
	}

	// Outputs that are not byte for byte equal wait for the validator.
	h.must(h.reportCPU(a1, x.Task, "v 1.0000000", 1))
	h.must(h.reportCPU(b1, y.Task, "v 1.0000001", 1))
	outs := h.take()
	want := []any{CheckpointsUnneeded{[]wu.Hash{ref("second", 2, "").Hash}}, CompareNeeded{x.WorkUnit}}
	if fmt.Sprint(outs) != fmt.Sprint(want) {
		t.Fatalf("results needing a comparison: outputs %v, want %v", outs, want)
	}

	// The verdict validates the unit: a grant for each replica.
	p := h.m.PendingComparisons(1)[0]
	h.must(h.req("validator", wu.OpCompare, wu.Compare{V: 1, Unit: p.Unit, A: p.A, B: p.B, Agree: true}, nil))
	if outs, want := h.take(), []any{CreditGranted{1}, CreditGranted{2}}; !slices.Equal(outs, want) {
		t.Fatalf("verdict: outputs %v, want %v", outs, want)
	}

	// Revoking a host says which.
	h.must(h.req("adm:test", wu.OpHostRevoke, wu.HostRevoke{V: 1, Host: b1}, nil))
	if outs, want := h.take(), []any{HostRevoked{b1}}; !slices.Equal(outs, want) {
		t.Fatalf("revoke: outputs %v, want %v", outs, want)
	}

	// An entry refused changes nothing and outputs nothing; nor does the
	// next entry repeat the last one's outputs.
	if e := h.req("adm:test", wu.OpHostRevoke, wu.HostRevoke{V: 1, Host: "nobody"}, nil); e == nil {
		t.Fatal("revoking an unknown host succeeded")
	}
	if outs := h.take(); len(outs) != 0 {
		t.Fatalf("refused entry: outputs %v", outs)
	}
}
