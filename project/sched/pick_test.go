package sched

import (
	"slices"
	"testing"
	"time"

	wu "github.com/momonga-project/momonga/workunits"
)

// checkWaiting fails unless the count of waiting tasks by size, kept as
// tasks change state, is what counting them afresh gives.
func (h *harness) checkWaiting(step string) {
	h.t.Helper()
	var want [buckets]int
	for _, t := range h.m.st.Tasks {
		if waiting(t) {
			want[bucket(h.m.st.Units[t.Unit].FPOps)]++
		}
	}
	if h.m.ix.waiting != want {
		h.t.Fatalf("%s: waiting tasks by size kept %v, counted %v", step, nonZero(h.m.ix.waiting), nonZero(want))
	}
}

func nonZero(w [buckets]int) map[int]int {
	m := map[int]int{}
	for b, n := range w {
		if n != 0 {
			m[b] = n
		}
	}
	return m
}

func TestWaitingCountsFollowEveryChange(t *testing.T) {
	h := newHarness(t)
	h.primes()
	h.helloAs("fast", 2, 1e10)
	h.helloAs("slow", 1, 1e8)
	h.sized("b", 86400, 1e9, 8e9, 27e9, 64e9, 125e9, 0, 0, 0)
	h.checkWaiting("submitted")
	f := h.work("fast", 2)
	s := h.work("slow", 1)
	h.checkWaiting("assigned")
	h.must(h.report("fast", f[0].Task, "r"))
	h.checkWaiting("reported")
	// The slow host's task and the fast one's other go back to the queue
	// when their leases lapse.
	h.pass(40 * time.Second)
	h.checkWaiting("leases lapsed")
	if len(s) == 0 || h.m.st.Tasks[s[0].Task].State != wu.TaskUnsent {
		t.Fatalf("the slow host's task did not go back to the queue: %v", s)
	}
	h.must(h.req("adm:test", wu.OpCancel, wu.Cancel{V: 1, Batch: "b"}, nil))
	h.checkWaiting("cancelled")
	h.sized("c", 86400, 0, 0, 0)
	h.restore()
	h.checkWaiting("restored")
	h.work("fast", 2)
	h.checkWaiting("assigned after the restore")
}

// TestSmallerWorkGoesInQueueOrder: a host faster than every waiting task
// needs takes them in the order they were queued when they are all of one
// size, as it would take its own class's.
func TestSmallerWorkGoesInQueueOrder(t *testing.T) {
	h := newHarness(t)
	h.primes()
	h.helloAs("fast", 4, 1e10)
	units := h.sized("b", 86400, 0, 0, 0, 0, 0, 0, 0)
	var got []string
	for _, n := range []int{3, 1, 3} {
		for _, a := range h.work("fast", n) {
			got = append(got, a.WorkUnit)
		}
		h.pass(time.Second)
	}
	if !slices.Equal(got, units) {
		t.Fatalf("the fast host took %v, want the queue's order %v", got, units)
	}
	if len(h.m.st.Unsent) != 0 {
		t.Fatalf("the queue still holds %d tasks given out", len(h.m.st.Unsent))
	}
}

// TestHeavierWorkOnlyLeavesAHostIdle: a slow host asks while only work too
// heavy for it waits: it is given nothing, and the queue is as it was.
func TestHeavierWorkOnlyLeavesAHostIdle(t *testing.T) {
	h := newHarness(t)
	h.primes()
	h.helloAs("fast", 1, 1e10)
	h.helloAs("slow", 1, 1e8)
	h.sized("b", 86400, 1e9, 125e9, 125e9)
	if got := h.work("slow", 1); len(got) != 1 || got[0].FPOps != 1e9 {
		t.Fatalf("the slow host took %v, want the small unit", fpopsOf(got))
	}
	before := slices.Clone(h.m.st.Unsent)
	if got := h.work("slow", 1); len(got) != 0 {
		t.Fatalf("the slow host took %v", fpopsOf(got))
	}
	if !slices.Equal(h.m.st.Unsent, before) || len(before) != 2 {
		t.Fatalf("queue %v after the slow host asked, %v before", h.m.st.Unsent, before)
	}
	if got := h.work("fast", 2); len(got) != 2 {
		t.Fatalf("the fast host took %v, want both heavy units", fpopsOf(got))
	}
}
