package sched

import (
	"encoding/json"
	"fmt"
	"slices"
	"testing"
	"time"

	wu "github.com/momonga-project/momonga/workunits"
)

// helloAs registers host with the given cores and benchmark.
func (h *harness) helloAs(host string, cpus int, flops float64) {
	h.t.Helper()
	h.helloInfo(host, wu.HostInfo{Name: host, CPUs: cpus, FLOPS: flops})
}

func (h *harness) helloInfo(host string, info wu.HostInfo) {
	h.t.Helper()
	raw := h.apply(wu.Command{V: 1, Op: wu.OpHello, Host: host, Body: wu.Encode(wu.Hello{V: 1, Host: info})})
	var r wu.HelloReply
	if err := json.Unmarshal(raw, &r); err != nil || r.Error != nil {
		h.t.Fatalf("hello: %s %v", raw, err)
	}
	h.hs[host] = r.NextSeq - 1
}

// sized submits one unit of app "primes" per size (fpops), with deadline
// seconds, named by its size, and returns the units' ids.
func (h *harness) sized(batch string, deadline float64, sizes ...float64) []string {
	h.t.Helper()
	spec := wu.Submit{V: 1, Batch: batch, App: "primes", Replication: 1, Quorum: 1, DeadlineSeconds: deadline}
	for _, f := range sizes {
		h.computations++
		spec.Units = append(spec.Units, wu.UnitSpec{Args: []string{fmt.Sprint(h.computations)}, FPOps: f})
	}
	var sr wu.SubmitReply
	h.must(h.req("adm:test", wu.OpSubmit, spec, &sr))
	return sr.Units
}

func (h *harness) primes() {
	h.t.Helper()
	h.must(h.req("adm:test", wu.OpAddApp, wu.AddApp{V: 1, Name: "primes", Hash: wu.HashOf([]byte("app")), Size: 3}, nil))
}

func fpopsOf(as []wu.Assignment) []float64 {
	var f []float64
	for _, a := range as {
		f = append(f, a.FPOps)
	}
	return f
}

func TestHeavyWorkGoesToFastHosts(t *testing.T) {
	h := newHarness(t)
	h.primes()
	h.helloAs("slow1", 1, 1e8)
	h.helloAs("slow2", 1, 1e8)
	h.helloAs("fast", 1, 1e10)
	// The study's workload: matrices of 250·n, n = 1..5, work ∝ n³.
	h.sized("b", 86400, 1e9, 8e9, 27e9, 64e9, 125e9)
	// The fast host has not asked for a while: it is not about to take work
	// that the slow ones could (for when it is, see finish_test.go).
	h.pass(time.Minute)
	// The slow hosts ask first: they take the two smallest, not the queue's
	// front in turn and then the heavy ones.
	s1, s2 := h.work("slow1", 1), h.work("slow2", 1)
	f := h.work("fast", 1)
	if got := [][]float64{fpopsOf(s1), fpopsOf(s2), fpopsOf(f)}; !slices.Equal(got[0], []float64{1e9}) || !slices.Equal(got[1], []float64{8e9}) || !slices.Equal(got[2], []float64{125e9}) {
		t.Fatalf("slow1, slow2, fast took %v; want the smallest to the slow hosts, the heaviest to the fast", got)
	}
	if st := h.hostStatus("fast"); st.Class != wu.SizeClasses-1 || h.hostStatus("slow1").Class != 0 {
		t.Fatalf("fast host in class %d, slow in %d", st.Class, h.hostStatus("slow1").Class)
	}
	// A slow host done with its task is not given heavier work, which the
	// fast host would finish sooner: the batch is not held back by it.
	h.must(h.report("slow1", s1[0].Task, "r"))
	if got := h.work("slow1", 1); len(got) != 0 {
		t.Fatalf("the slow host took %v", fpopsOf(got))
	}
	h.must(h.report("fast", f[0].Task, "r"))
	if got := h.work("fast", 1); len(got) != 1 || got[0].FPOps != 64e9 {
		t.Fatalf("the fast host took %v next, want the heaviest left", fpopsOf(got))
	}
}

// TestHostsGoneForGoodStopCounting: a fast host that stopped asking is no
// longer among the active hosts, so the fastest of those that stay is in
// the top class and takes the heavy work.
func TestHostsGoneForGoodStopCounting(t *testing.T) {
	h := newHarness(t)
	h.primes()
	h.helloAs("gone", 1, 1e11)
	h.helloAs("mid", 1, 1e10)
	h.helloAs("slow", 1, 1e8)
	h.sized("b", 7*86400, 1e9, 1e12)
	if c := h.hostStatus("mid").Class; c == wu.SizeClasses-1 {
		t.Fatalf("mid is in the top class beside a faster host")
	}
	for range 3 {
		h.pass(30 * time.Minute)
		h.beat("mid", "none", 0)
		h.beat("slow", "none", 0)
	}
	if c := h.hostStatus("mid").Class; c != wu.SizeClasses-1 {
		t.Fatalf("mid is in class %d after the faster host left", c)
	}
	if got := h.work("mid", 1); len(got) != 1 || got[0].FPOps != 1e12 {
		t.Fatalf("mid took %v", fpopsOf(got))
	}
	h.helloAs("gone", 1, 1e11) // back
	if c := h.hostStatus("mid").Class; c == wu.SizeClasses-1 {
		t.Fatalf("mid is still in the top class once the faster host is back")
	}
}

func TestFirstComeFirstServedIsKept(t *testing.T) {
	h := newHarness(t)
	h.m = New(Config{Lease: 30 * time.Second, Policy: PolicyFCFS})
	h.tick(0)
	h.primes()
	h.helloAs("slow", 1, 1e8)
	h.helloAs("fast", 1, 1e10)
	h.sized("b", 86400, 1e9, 125e9, 8e9)
	if s, f := h.work("slow", 1), h.work("fast", 1); s[0].FPOps != 1e9 || f[0].FPOps != 125e9 {
		t.Fatalf("first come first served gave %v and %v", fpopsOf(s), fpopsOf(f))
	}
}

func TestDeadlineFeasibility(t *testing.T) {
	h := newHarness(t)
	h.primes()
	h.helloAs("slow", 1, 1e9)  // 1,000 s for 1e12
	h.helloAs("fast", 1, 1e11) // 10 s
	h.sized("b", 100, 1e12)
	if got := h.work("slow", 1); len(got) != 0 {
		t.Fatalf("a host that cannot finish by the deadline was given %v", fpopsOf(got))
	}
	if got := h.work("fast", 1); len(got) != 1 {
		t.Fatal("the fast host got nothing")
	}
	// What a host holds counts: 60 s each, a deadline of 100 s, one core.
	h.sized("b", 100, 6e12, 6e12)
	if got := h.work("fast", 2); len(got) != 1 {
		t.Fatalf("the fast host took %d tasks of 60 s each with a deadline of 100 s behind one of 10 s", len(got))
	}
	// A throttled host is that much slower.
	h.helloInfo("throttled", wu.HostInfo{Name: "throttled", CPUs: 1, FLOPS: 1e11, Throttle: 0.05})
	if got := h.work("throttled", 1); len(got) != 0 {
		t.Fatalf("a host running tasks 5%% of the time took a 60 s task due in 100 s")
	}
}

func TestMaxTasksPerCore(t *testing.T) {
	h := newHarness(t)
	h.primes()
	h.helloAs("one", 1, 1e9)
	// 1,500 units of unknown size: their estimate is nothing.
	h.sized("b", 86400, make([]float64, 1500)...)
	got := h.work("one", 256)
	if len(got) != 2 {
		t.Fatalf("a one-core host asking for 256 tasks got %d, want 2", len(got))
	}
	h.must(h.report("one", got[0].Task, "x"))
	if more := h.work("one", 256); len(more) != 1 {
		t.Fatalf("after one report the host got %d more, want 1", len(more))
	}
	h.helloAs("four", 4, 1e9)
	if got := h.work("four", 256); len(got) != 8 {
		t.Fatalf("a four-core host got %d, want 8", len(got))
	}
}

// TestLiarIsReclassifiedFromItsTurnaround: a host that claims a benchmark
// 100 times its real speed first gets heavy work; once its results come
// back late its DCF says what it is, and it gets light work and nothing it
// would not finish in time.
func TestLiarIsReclassifiedFromItsTurnaround(t *testing.T) {
	h := newHarness(t)
	h.primes()
	h.helloAs("liar", 1, 1e12)
	h.helloAs("honest", 1, 1e10)
	h.helloAs("slow", 1, 1e9)
	h.sized("b", 3600, 1e11, 1e11, 1e11, 1e11)
	lied := h.work("liar", 1)
	if len(lied) != 1 || h.hostStatus("liar").Class <= h.hostStatus("honest").Class {
		t.Fatalf("the claimed benchmark did not rank the liar first")
	}
	// Estimated 0.1 s; it comes back after 100 s, as at 1e9 FLOPS,
	// beating all along.
	for range 10 {
		h.pass(10 * time.Second)
		h.beat("liar", lied[0].Task, 0.5)
	}
	h.must(h.report("liar", lied[0].Task, "x"))
	st := h.hostStatus("liar")
	if st.DCF < 500 || st.Class > h.hostStatus("slow").Class || st.Speed > 1e10 {
		t.Fatalf("after a result 1,000 times late the liar has DCF %g, speed %g, class %d (the slow host's: %d)", st.DCF, st.Speed, st.Class, h.hostStatus("slow").Class)
	}
	// Work due within 60 s, 10 s at the claimed speed: not for it any more.
	h.sized("b", 60, 1e11)
	h.sized("b", 60, 1e13)
	for _, a := range h.work("liar", 1) {
		if a.FPOps == 1e13 {
			t.Fatalf("the liar still got work it cannot finish in time")
		}
	}
}

func TestLocalityPrefersHeldInputsAndIgnoresFalseClaims(t *testing.T) {
	h := newHarness(t)
	h.primes()
	x, y := wu.HashOf([]byte("input x")), wu.HashOf([]byte("input y"))
	spec := wu.Submit{V: 1, Batch: "b", App: "primes", Replication: 1, Quorum: 1}
	for i, in := range []wu.Hash{y, y, y, x, y, x} {
		spec.Units = append(spec.Units, wu.UnitSpec{Name: fmt.Sprint(i), Args: []string{fmt.Sprint(i)}, Stdin: in})
	}
	h.must(h.req("adm:test", wu.OpSubmit, spec, nil))
	for _, host := range []string{"holder", "claimer", "plain"} {
		h.helloAs(host, 1, 1e9)
	}
	work := func(host string, cache ...wu.Hash) wu.Assignment {
		t.Helper()
		var r wu.WorkReply
		h.must(h.req(host, wu.OpWork, wu.WorkRequest{V: 1, Seq: 1, Slots: 1, Cache: cache}, &r))
		if len(r.Assignments) != 1 {
			t.Fatalf("%s got %d tasks", host, len(r.Assignments))
		}
		return r.Assignments[0]
	}
	// holder is given a task on x the first time: the queue's fourth.
	h.m.st.Hosts["holder"].Given = nil
	first := work("plain")
	if first.Stdin != y {
		t.Fatalf("the front of the queue is on %s", first.Stdin.Short())
	}
	h.must(h.report("plain", first.Task, "r"))
	// Give x to holder through the queue: take the y tasks first.
	a := work("holder")
	h.must(h.report("holder", a.Task, "r"))
	b := work("holder")
	h.must(h.report("holder", b.Task, "r"))
	c := work("holder")
	if c.Stdin != x {
		t.Fatalf("the queue's fourth task is on %s", c.Stdin.Short())
	}
	h.must(h.report("holder", c.Task, "r"))
	// Now: y (the fifth) is at the front, x (the sixth) behind it.
	if got := work("claimer", x); got.Stdin != y {
		t.Fatalf("a host claiming an input it was never given got work on it: %s", got.Task)
	}
	h.m.st.Unsent = append([]string{}, h.m.st.Unsent...)
	if got := work("holder", x); got.Stdin != x {
		t.Fatalf("the host holding x got %s, not the task on x", got.Stdin.Short())
	}
}

func TestIdleHostsAreToldOfNewWork(t *testing.T) {
	h := newHarness(t)
	h.primes()
	h.helloAs("a", 1, 1e9)
	h.helloAs("b", 1, 1e10)
	h.helloAs("busy", 1, 1e9)
	h.sized("b", 86400, 1e9)
	h.work("busy", 1) // takes the only task and is not idle: it got what it could take
	if got := h.work("a", 2); len(got) != 0 {
		t.Fatal("a got work from an empty queue")
	}
	h.work("b", 1)
	h.outs = nil
	h.sized("b", 86400, 1e9)
	if got := waitingOuts(h.outs); fmt.Sprint(got) != "[[b]]" {
		t.Fatalf("one task queued told %v; want the fastest idle host", got)
	}
	h.outs = nil
	h.sized("b", 86400, 1e9, 1e9)
	if got := waitingOuts(h.outs); fmt.Sprint(got) != "[[a]]" {
		t.Fatalf("two tasks queued told %v; want the one idle host left", got)
	}
	// A task lost goes again, and whoever waits hears of it.
	busy := h.work("busy", 1)
	_ = busy
	if got := h.work("a", 1); len(got) == 0 {
		t.Fatal("a got nothing")
	}
	h.work("b", 1)
	h.work("a", 1) // idle again
	h.outs = nil
	h.pass(40 * time.Second) // busy's and the others' leases run out
	found := false
	for _, w := range waitingOuts(h.outs) {
		if slices.Contains(w, "a") {
			found = true
		}
	}
	if !found {
		t.Fatalf("lost tasks told %v; want a among them", waitingOuts(h.outs))
	}
	hosts, tasks := h.m.IdleHosts()
	if tasks == 0 || slices.Contains(hosts, "a") {
		t.Fatalf("idle hosts %v with %d tasks waiting, after a was told", hosts, tasks)
	}
}

func waitingOuts(outs []any) [][]string {
	var got [][]string
	for _, o := range outs {
		if w, ok := o.(WorkWaiting); ok {
			got = append(got, w.Hosts)
		}
	}
	return got
}
