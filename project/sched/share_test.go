package sched

import (
	"reflect"
	"testing"

	wu "github.com/momonga-project/momonga/workunits"
)

// submitSame submits one unit of app "primes" with args, in batch, with
// replication and quorum 2; it returns its id.
func (h *harness) submitSame(batch string, noShare bool, args ...string) string {
	h.t.Helper()
	var sr wu.SubmitReply
	h.must(h.req("adm:test", wu.OpSubmit, wu.Submit{V: 1, Batch: batch, App: "primes", Replication: 2, Quorum: 2, NoShare: noShare,
		Units: []wu.UnitSpec{{Args: args}}}, &sr))
	return sr.Units[0]
}

func (h *harness) results(batch string) []wu.UnitResult {
	h.t.Helper()
	rep, err := h.m.Results(wu.ResultsQuery{V: 1, Batch: batch})
	if err != nil {
		h.t.Fatal(err)
	}
	return rep.Units
}

func TestSharedResults(t *testing.T) {
	h := newHarness(t)
	h.primes()
	for _, host := range []string{"a", "b", "c"} {
		h.helloAs(host, 4, 1e9)
	}
	p := h.submitSame("first", false, "0", "100")
	f := h.submitSame("second", false, "0", "100")   // the same computation: waits for p
	own := h.submitSame("third", true, "0", "100")   // opted out: computes
	other := h.submitSame("second", false, "0", "7") // another computation
	if n := len(h.m.st.Units[f].Tasks); n != 0 {
		t.Fatalf("a unit sharing a computation under way has %d tasks", n)
	}
	// The one computation, with its replication and quorum: two replicas
	// of p, two of own, two of other.
	as, bs := h.work("a", 4), h.work("b", 4)
	if len(as)+len(bs) != 6 {
		t.Fatalf("%d tasks went out for three computations of two replicas each", len(as)+len(bs))
	}
	for _, a := range append(as, bs...) {
		h.must(h.report(map[bool]string{true: "a", false: "b"}[contains(as, a.Task)], a.Task, "25"))
	}
	for _, batch := range []string{"first", "second", "third"} {
		for _, r := range h.results(batch) {
			if r.State != wu.WorkUnitValid || r.Output != wu.HashOf([]byte("25")) {
				t.Fatalf("batch %s: %+v", batch, r)
			}
		}
	}
	if r := h.results("second")[0]; r.SharedWith != p || r.Tasks != 0 {
		t.Fatalf("the sharing unit: %+v", r)
	}
	if len(h.m.Outbox(0)) != 6 {
		t.Fatalf("%d grants for 6 results computed", len(h.m.Outbox(0)))
	}
	// Validated: a new unit of the same computation is valid at once.
	late := h.submitSame("fourth", false, "0", "100")
	if u := h.m.st.Units[late]; u.State != wu.WorkUnitValid || u.SharedWith != p || len(u.Tasks) != 0 {
		t.Fatalf("a unit of a computation done: %+v", u)
	}
	_ = own
	_ = other
}

func contains(as []wu.Assignment, task string) bool {
	for _, a := range as {
		if a.Task == task {
			return true
		}
	}
	return false
}

func TestSharedComputationCancelledOrFailed(t *testing.T) {
	h := newHarness(t)
	h.primes()
	hosts := []string{"a", "b", "c", "d", "e", "f"}
	for _, host := range hosts {
		h.helloAs(host, 4, 1e9)
	}
	p := h.submitSame("p", false, "x")
	f1 := h.submitSame("f", false, "x")
	f2 := h.submitSame("g", false, "x")
	// The computing unit is cancelled: the first waiting computes, the
	// other waits for it.
	h.must(h.req("adm:test", wu.OpCancel, wu.Cancel{V: 1, Batch: "p"}, nil))
	u1, u2 := h.m.st.Units[f1], h.m.st.Units[f2]
	if h.m.st.Units[p].State != wu.WorkUnitCancelled || u1.SharedWith != "" || len(u1.Tasks) != 2 || u2.SharedWith != f1 {
		t.Fatalf("after cancelling the computing unit: %+v, %+v", u1, u2)
	}
	// It fails (every replica fails, up to its limit): so does the one
	// waiting for it.
	for range 3 {
		for _, host := range hosts {
			for _, a := range h.work(host, 1) {
				h.must(h.req(host, wu.OpResult, wu.Report{V: 1, Seq: 1, Task: a.Task, Outcome: wu.OutcomeFailure, Reason: "crash"}, nil))
			}
		}
	}
	if u1.State != wu.WorkUnitError || u2.State != wu.WorkUnitError || u2.Reason == "" {
		t.Fatalf("after the computation failed: %s %s, %s %q", u1.State, u1.ID, u2.State, u2.Reason)
	}
	if _, ok := h.m.st.Shares[shareKey(u1)]; ok {
		t.Fatal("a failed computation is still offered to share")
	}
}

func TestCancel(t *testing.T) {
	h := newHarness(t)
	h.primes()
	h.helloAs("a", 4, 1e9)
	h.helloAs("b", 4, 1e9)
	var sr wu.SubmitReply
	spec := wu.Submit{V: 1, Batch: "b", App: "primes", Replication: 1, Quorum: 1}
	for i := range 6 {
		spec.Units = append(spec.Units, wu.UnitSpec{Name: "n" + string(rune('0'+i)), Args: []string{string(rune('0' + i))}})
	}
	h.must(h.req("adm:test", wu.OpSubmit, spec, &sr))
	as := h.work("a", 2)
	h.must(h.report("a", as[0].Task, "done")) // valid, credited
	running := as[1].Task
	// A unit the batch does not have: refused, nothing changes.
	if e := h.req("adm:test", wu.OpCancel, wu.Cancel{V: 1, Batch: "b", Units: []string{"n1", "nope"}}, nil); e == nil || e.Code != wu.CodeNotFound {
		t.Fatalf("cancel of an unknown unit: %v", e)
	}
	if e := h.req("adm:test", wu.OpCancel, wu.Cancel{V: 1, Batch: "nobatch"}, nil); e == nil {
		t.Fatal("cancel of an unknown batch accepted")
	}
	if bs := h.batch(); bs.Cancelled != 0 {
		t.Fatalf("a refused cancel cancelled %d units", bs.Cancelled)
	}
	var cr wu.CancelReply
	h.must(h.req("adm:test", wu.OpCancel, wu.Cancel{V: 1, Batch: "b", Units: []string{"n2"}}, &cr))
	if cr.Cancelled != 1 {
		t.Fatalf("cancelled %d units, want 1", cr.Cancelled)
	}
	h.must(h.req("adm:test", wu.OpCancel, wu.Cancel{V: 1, Batch: "b"}, &cr))
	if cr.Cancelled != 4 {
		t.Fatalf("cancelled %d units of the batch, want the 4 left undecided", cr.Cancelled)
	}
	// The running task is aborted at its next beat, and its result is
	// refused; nothing is left to give.
	if abort := h.beat("a", running, 0.5); len(abort) != 1 || abort[0] != running {
		t.Fatalf("beat of a cancelled task: abort %v", abort)
	}
	if e := h.report("a", running, "late"); e == nil {
		t.Fatal("a result for a cancelled unit was accepted")
	}
	if got := h.work("b", 4); len(got) != 0 {
		t.Fatalf("work of a cancelled batch went out: %v", got)
	}
	bs := h.batch()
	if bs.Valid != 1 || bs.Cancelled != 5 || bs.Pending != 0 || !bs.Done() || bs.Tasks[wu.TaskAssigned] != 0 || bs.Tasks[wu.TaskUnsent] != 0 {
		t.Fatalf("batch after cancelling: %+v", bs)
	}
	states := map[wu.WorkUnitState]int{}
	for _, r := range h.results("b") {
		states[r.State]++
	}
	if !reflect.DeepEqual(states, map[wu.WorkUnitState]int{wu.WorkUnitValid: 1, wu.WorkUnitCancelled: 5}) {
		t.Fatalf("results by state %v", states)
	}
	// The credit granted before stays granted.
	if len(h.m.Outbox(0)) != 1 {
		t.Fatalf("outbox %v after cancelling", h.m.Outbox(0))
	}
}
