package sched

import (
	"math"
	"testing"
	"time"

	wu "github.com/momonga-project/momonga/workunits"
)

// ask sends a work request for one task from host and returns the reply.
func (h *harness) ask(host string) wu.WorkReply {
	h.t.Helper()
	var r wu.WorkReply
	h.must(h.req(host, wu.OpWork, wu.WorkRequest{V: 1, Seq: 1, Slots: 1}, &r))
	return r
}

// TestSlowHostLeavesTaskToFastHostAboutToBeFree: the study's case. The fast
// host holds 5 s of work; a slow host, idle, would take 10 s over a task the
// fast one finishes 0.1 s after its own: it is refused it, and told to ask
// again when the fast one is expected to start it. The fast one takes it.
func TestSlowHostLeavesTaskToFastHostAboutToBeFree(t *testing.T) {
	h := newHarness(t)
	h.primes()
	h.helloAs("fast", 1, 1e10)
	h.helloAs("slow", 1, 1e8)
	h.sized("b", 86400, 5e10) // 5 s on the fast host
	h.sized("b", 86400, 1e9)  // 0.1 s on the fast host, 10 s on the slow
	heavy := h.work("fast", 1)
	if len(heavy) != 1 || heavy[0].FPOps != 5e10 {
		t.Fatalf("the fast host took %v", fpopsOf(heavy))
	}
	for _, restored := range []bool{false, true} {
		r := h.ask("slow")
		if len(r.Assignments) != 0 {
			t.Fatalf("restored %v: the slow host took %v, which the fast one finishes in 5.1 s against its 10 s", restored, fpopsOf(r.Assignments))
		}
		if math.Abs(r.RetrySeconds-5) > 0.01 {
			t.Fatalf("restored %v: the slow host is told to ask again in %g s, want 5 (when the fast one is expected to start the task)", restored, r.RetrySeconds)
		}
		// Every member decides alike: one restored from a snapshot too.
		h.restore()
	}
	h.pass(5 * time.Second)
	h.must(h.report("fast", heavy[0].Task, "r"))
	if got := h.work("fast", 1); len(got) != 1 || got[0].FPOps != 1e9 {
		t.Fatalf("the fast host then took %v", fpopsOf(got))
	}
}

// TestSlowHostTakesTaskBehindFastHostsLongBacklog: with 200 s of work on the
// fast host, the slow one's 10 s is the sooner finish, and it takes the
// task: a busy fast host does not starve the slow ones.
func TestSlowHostTakesTaskBehindFastHostsLongBacklog(t *testing.T) {
	h := newHarness(t)
	h.primes()
	h.helloAs("fast", 1, 1e10)
	h.helloAs("slow", 1, 1e8)
	h.sized("b", 86400, 1e12, 1e12) // 100 s each on the fast host
	h.sized("b", 86400, 1e9)
	if got := h.work("fast", 2); len(got) != 2 {
		t.Fatalf("the fast host took %d tasks", len(got))
	}
	if got := h.work("slow", 1); len(got) != 1 || got[0].FPOps != 1e9 {
		t.Fatalf("the slow host took %v, want the 1e9 task the fast one would finish in 200.1 s", fpopsOf(got))
	}
}

// TestLateFastHostStopsHoldingWorkBack: a host that claims 10,000 times its
// speed holds work back only until it is late by more than a beat; its
// late result then ranks it below the honest slow host, and it holds
// nothing back any more, even idle.
func TestLateFastHostStopsHoldingWorkBack(t *testing.T) {
	h := newHarness(t)
	h.primes()
	h.helloAs("liar", 1, 1e12) // computes at 1e8
	h.helloAs("slow", 1, 1e9)
	h.sized("b", 86400, 1e11) // claimed 0.1 s, takes the liar 1,000 s
	h.sized("b", 86400, 1e10) // 10 s on the slow host, 0.01 s as the liar claims
	lied := h.work("liar", 1)
	if len(lied) != 1 || lied[0].FPOps != 1e11 {
		t.Fatalf("the liar took %v", fpopsOf(lied))
	}
	if got := h.work("slow", 1); len(got) != 0 {
		t.Fatalf("the slow host took %v while the liar claims to be free in 0.1 s", fpopsOf(got))
	}
	// Due 0.1 s after it was sent: a beat (10 s) later it is late, beating
	// or not, and the task goes to the slow host.
	h.pass(5 * time.Second)
	h.beat("liar", lied[0].Task, 0.01)
	if got := h.work("slow", 1); len(got) != 0 {
		t.Fatalf("the slow host took %v within a beat of the liar's estimate", fpopsOf(got))
	}
	h.pass(6 * time.Second)
	h.beat("liar", lied[0].Task, 0.01)
	slow := h.work("slow", 1)
	if len(slow) != 1 || slow[0].FPOps != 1e10 {
		t.Fatalf("the slow host took %v once the liar was late", fpopsOf(slow))
	}
	for range 99 {
		h.pass(10 * time.Second)
		h.beat("liar", lied[0].Task, 0.5)
		if len(slow) == 1 {
			h.must(h.report("slow", slow[0].Task, "s"))
			slow = nil
		}
	}
	h.must(h.report("liar", lied[0].Task, "l"))
	if l, s := h.hostStatus("liar"), h.hostStatus("slow"); l.Speed >= s.Speed {
		t.Fatalf("after a result 10,000 times late the liar's speed is %g, the slow host's %g", l.Speed, s.Speed)
	}
	// The liar, idle and about to ask, holds back nothing.
	h.sized("b", 86400, 1e10)
	if got := h.work("slow", 1); len(got) != 1 {
		t.Fatalf("the slow host got nothing beside the re-classified liar")
	}
}
