package sched

import (
	"math"
	"math/rand/v2"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/momonga-project/momonga/vpeer/fsm"
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
// speed holds work back only until it is late by more than the retry
// interval; its late result then ranks it below the honest slow host, and
// it holds nothing back any more, even idle.
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
	// Due 0.1 s after it was sent: 5 s later (the retry interval) it is
	// late, beating or not, and the task goes to the slow host.
	h.pass(5 * time.Second)
	h.beat("liar", lied[0].Task, 0.01)
	if got := h.work("slow", 1); len(got) != 0 {
		t.Fatalf("the slow host took %v within the retry interval of the liar's estimate", fpopsOf(got))
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

// BenchmarkApplyWorkSized is BenchmarkApplyWork with the earliest-finish
// check at work: 1,000 hosts of speeds spread over three orders of
// magnitude, units of four sizes, each request for one slot; no bound on
// the tasks a host holds, so that every request is served.
func BenchmarkApplyWorkSized(b *testing.B) {
	h := newHarness(b)
	h.m = New(Config{Lease: 30 * time.Second, MaxTasksPerCore: -1})
	h.tick(0)
	h.primes()
	sizes := []float64{1e9, 1e10, 1e11, 1e12}
	for done := 0; done < b.N; {
		n := min(wu.MaxUnitsPerSubmit, b.N-done)
		spec := wu.Submit{V: 1, Batch: "b" + strconv.Itoa(done/100_000), App: "primes", Replication: 1, Quorum: 1}
		for i := range n {
			spec.Units = append(spec.Units, wu.UnitSpec{Args: []string{strconv.Itoa(done + i)}, FPOps: sizes[(done+i)%len(sizes)]})
		}
		h.must(h.req("adm:test", wu.OpSubmit, spec, nil))
		done += n
	}
	const hosts = 1000
	for i := range hosts {
		h.helloAs("h"+strconv.Itoa(i), 1+i%4, 1e8*math.Pow(1000, float64(i)/hosts))
	}
	payloads := make([][]byte, b.N)
	for i := range payloads {
		host := "h" + strconv.Itoa(i%hosts)
		h.hs[host]++
		seq := h.hs[host]
		payloads[i] = wu.Encode(wu.Command{V: 1, Op: wu.OpWork, Host: host, Seq: seq, Body: wu.Encode(wu.WorkRequest{V: 1, Seq: seq, Slots: 1})})
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		h.seq++
		h.m.Apply(fsm.Entry{Seq: h.seq, Time: h.now, Payload: payloads[i]})
	}
}

// TestAltHeapPopsSoonestFirst: the heap written out for the alternatives
// gives its entries back by free time, then by host id, whatever the order
// they came in.
func TestAltHeapPopsSoonestFirst(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	var a altHeap
	var want []altEntry
	for i := range 500 {
		e := altEntry{free: rng.Int64N(50), h: &host{ID: "h" + strconv.Itoa(i)}}
		a.push(e)
		want = append(want, e)
		if rng.IntN(3) == 0 { // pops between pushes too
			slices.SortFunc(want, cmpEntries)
			if a[0] != want[0] {
				t.Fatalf("top is %v, want %v", a[0], want[0])
			}
			a.pop()
			want = want[1:]
		}
	}
	slices.SortFunc(want, cmpEntries)
	for i, w := range want {
		if a[0] != w {
			t.Fatalf("pop %d gave free %d host %s, want %d %s", i, a[0].free, a[0].h.ID, w.free, w.h.ID)
		}
		a.pop()
	}
	if len(a) != 0 {
		t.Fatalf("%d entries left", len(a))
	}
}

// TestLateSlowHostsTaskGetsBackupOnIdleFastHost: a slow host takes a task
// it was estimated to finish first, then computes at a fraction of its
// benchmark. Once it has had the task twice as long as estimated, the fast
// host, idle, gets a second replica, which it finishes first: the unit is
// valid with it and the slow host is told to abort.
func TestLateSlowHostsTaskGetsBackupOnIdleFastHost(t *testing.T) {
	h := newHarness(t)
	h.primes()
	h.helloAs("fast", 1, 1e10)
	h.helloAs("slow", 1, 1e9)
	h.sized("b", 86400, 1e11) // 10 s on the fast host
	h.sized("b", 86400, 1e10) // 10 s on the slow host, 1 s on the fast
	heavy := h.work("fast", 1)
	slow := h.work("slow", 1)
	if len(heavy) != 1 || len(slow) != 1 || slow[0].FPOps != 1e10 {
		t.Fatalf("fast took %v, slow %v", fpopsOf(heavy), fpopsOf(slow))
	}
	h.pass(10 * time.Second)
	h.beat("slow", slow[0].Task, 0.25)
	h.must(h.report("fast", heavy[0].Task, "r"))
	if got := h.work("fast", 1); len(got) != 0 {
		t.Fatalf("the fast host got %v while the slow one was not late yet", fpopsOf(got))
	}
	h.pass(6 * time.Second)
	h.beat("slow", slow[0].Task, 0.3)
	if got := h.work("fast", 1); len(got) != 0 {
		t.Fatalf("the fast host got %v after 16 s of a task estimated at 10 s", fpopsOf(got))
	}
	h.pass(5 * time.Second)
	h.beat("slow", slow[0].Task, 0.4) // 31.5 s left at this pace
	h.restore()                       // a member restored now decides alike
	backup := h.work("fast", 1)
	if len(backup) != 1 || backup[0].WorkUnit != slow[0].WorkUnit || backup[0].Task == slow[0].Task {
		t.Fatalf("the idle fast host got %+v, want a second replica of %s", backup, slow[0].Task)
	}
	h.pass(time.Second)
	h.must(h.report("fast", backup[0].Task, "x"))
	if abort := h.beat("slow", slow[0].Task, 0.35); len(abort) != 1 || abort[0] != slow[0].Task {
		t.Fatalf("the slow host was told to abort %v", abort)
	}
	if st := h.status(); st.Batches[0].Valid != 2 {
		t.Fatalf("batch: %+v", st.Batches[0])
	}
}
