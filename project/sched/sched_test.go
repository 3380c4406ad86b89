package sched

import (
	"bytes"
	"encoding/json"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/momonga-project/momonga/project/accounting"
	"github.com/momonga-project/momonga/vpeer/fsm"
	wu "github.com/momonga-project/momonga/workunits"
)

var t0 = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

// harness feeds entries to a Machine the way a vpeer member would.
type harness struct {
	t   testing.TB
	m   *Machine
	seq uint64
	now time.Time
	hs  map[string]uint64 // next request seq per requester
	// acct counts the credit the scheduler grants (status).
	acct *accounting.Machine
	outs []any // every output of every entry applied, in order
	// computations numbers the units submitUnits makes, so that no two
	// share a computation.
	computations int
}

func newHarness(t testing.TB) *harness {
	h := &harness{t: t, m: New(Config{Lease: 30 * time.Second}), now: t0, hs: map[string]uint64{}}
	h.tick(0)
	return h
}

func (h *harness) apply(cmd wu.Command) []byte {
	h.seq++
	reply := h.m.Apply(fsm.Entry{Seq: h.seq, Time: h.now, Payload: wu.Encode(cmd)})
	h.outs = append(h.outs, h.m.Outputs()...)
	return reply
}

// status is the scheduler's status with the credit an accounting machine
// counts from the outbox, as the project server shows it.
func (h *harness) status() wu.StatusReply {
	if h.acct == nil {
		h.acct = accounting.New()
	}
	if rc := h.acct.Receive(accounting.Delivery{V: 1, Source: "sched", Grants: h.m.Outbox(0)}); rc.Error != nil {
		h.t.Fatalf("accounting refused the outbox: %v", rc.Error)
	}
	st := h.m.Status()
	h.acct.Ledger("sched", nil).Fill(st.Now, st.Hosts, st.Users, st.Teams)
	return st
}

// tick puts one tick d after the last entry in the log. A d longer than
// the lease is a gap in the log: the project was down (see pass).
func (h *harness) tick(d time.Duration) {
	h.now = h.now.Add(d)
	h.seq++
	h.m.Apply(fsm.Entry{Seq: h.seq, Time: h.now, Tick: true})
	h.outs = append(h.outs, h.m.Outputs()...)
}

// pass lets d go by with the project up: a tick every second, as the
// lease holder puts them.
func (h *harness) pass(d time.Duration) {
	for ; d > time.Second; d -= time.Second {
		h.tick(time.Second)
	}
	h.tick(d)
}

// req sends a request from host as the next in its sequence and decodes
// the reply into out; it returns the reply's error, if any.
func (h *harness) req(host, op string, body any, out any) *wu.Error {
	h.hs[host]++
	return h.reqSeq(host, h.hs[host], op, body, out)
}

func (h *harness) reqSeq(host string, seq uint64, op string, body any, out any) *wu.Error {
	raw := h.apply(wu.Command{V: 1, Op: op, Host: host, Seq: seq, Body: wu.Encode(body)})
	var ack wu.Ack
	if err := json.Unmarshal(raw, &ack); err != nil {
		h.t.Fatalf("%s reply %q: %v", op, raw, err)
	}
	if ack.Error == nil && out != nil {
		if err := json.Unmarshal(raw, out); err != nil {
			h.t.Fatalf("%s reply %q: %v", op, raw, err)
		}
	}
	return ack.Error
}

func (h *harness) must(e *wu.Error) {
	h.t.Helper()
	if e != nil {
		h.t.Fatalf("unexpected error: %v", e)
	}
}

func (h *harness) hello(host string) {
	h.t.Helper()
	raw := h.apply(wu.Command{V: 1, Op: wu.OpHello, Host: host, Body: wu.Encode(wu.Hello{V: 1, Host: wu.HostInfo{Name: host, CPUs: 2, FLOPS: 2e9}})})
	var r wu.HelloReply
	if err := json.Unmarshal(raw, &r); err != nil || r.Error != nil {
		h.t.Fatalf("hello: %s %v", raw, err)
	}
	h.hs[host] = r.NextSeq - 1
}

func (h *harness) setup(units int, repl, quorum int) {
	h.t.Helper()
	h.must(h.req("adm:test", wu.OpAddApp, wu.AddApp{V: 1, Name: "primes", Hash: wu.HashOf([]byte("app")), Size: 3}, nil))
	spec := wu.Submit{V: 1, Batch: "b1", App: "primes", Replication: repl, Quorum: quorum}
	for i := 0; i < units; i++ {
		spec.Units = append(spec.Units, wu.UnitSpec{Args: []string{"0", strconv.Itoa(10 + i)}})
	}
	var sr wu.SubmitReply
	h.must(h.req("adm:test", wu.OpSubmit, spec, &sr))
	if len(sr.Units) != units {
		h.t.Fatalf("submit created %d units, want %d", len(sr.Units), units)
	}
}

func (h *harness) work(host string, slots int) []wu.Assignment {
	h.t.Helper()
	var r wu.WorkReply
	h.must(h.req(host, wu.OpWork, wu.WorkRequest{V: 1, Seq: 1, Slots: slots}, &r))
	return r.Assignments
}

// beat sends a heartbeat from host for task, fraction done, and returns
// the tasks the host is told to abort.
func (h *harness) beat(host, task string, fraction float64) []string {
	h.t.Helper()
	var br wu.BeatReply
	h.must(h.req(host, wu.OpBeat, wu.Beat{V: 1, Seq: 1, Tasks: []wu.TaskProgress{{Task: task, Fraction: fraction}}}, &br))
	return br.Abort
}

func (h *harness) report(host, taskID, output string) *wu.Error {
	return h.req(host, wu.OpResult, wu.Report{V: 1, Seq: 1, Task: taskID, Outcome: wu.OutcomeSuccess,
		Output: wu.HashOf([]byte(output)), OutputSize: int64(len(output)), CPUSeconds: 10}, nil)
}

func (h *harness) snapshot() []byte {
	var b bytes.Buffer
	if err := h.m.Snapshot(&b); err != nil {
		h.t.Fatal(err)
	}
	return b.Bytes()
}

func (h *harness) batch() wu.BatchStatus {
	st := h.m.Status()
	if len(st.Batches) != 1 {
		h.t.Fatalf("%d batches", len(st.Batches))
	}
	return st.Batches[0]
}

func TestLifecycleValidatesOnQuorumAndCreditsOnce(t *testing.T) {
	h := newHarness(t)
	h.setup(3, 2, 2)
	h.hello("a")
	h.hello("b")
	as := h.work("a", 8)
	bs := h.work("b", 8)
	if len(as) != 3 || len(bs) != 3 {
		t.Fatalf("a got %d tasks, b got %d; want 3 each (one replica of each unit)", len(as), len(bs))
	}
	for _, x := range append(as, bs...) {
		if x.AppHash != wu.HashOf([]byte("app")) || len(x.Args) != 2 || x.Limits.MemoryBytes != wu.DefaultMemoryBytes {
			t.Fatalf("assignment lacks what the host needs: %+v", x)
		}
	}
	for i := range as {
		h.must(h.report("a", as[i].Task, "4\n"))
		h.must(h.report("b", bs[i].Task, "4\n"))
	}
	b := h.batch()
	if b.Valid != 3 || b.Pending != 0 || !b.Done() {
		t.Fatalf("batch %+v, want 3 valid", b)
	}
	st := h.status()
	for _, hs := range st.Hosts {
		if hs.Valid != 3 || hs.Credit <= 0 {
			t.Fatalf("host %s: %+v, want 3 valid results with credit", hs.ID, hs)
		}
	}
	// A retried report (same seq) is answered again but credits nothing.
	before := h.status().Hosts[0].Credit
	if e := h.reqSeq("a", h.hs["a"], wu.OpResult, wu.Report{V: 1, Seq: 1, Task: as[2].Task, Outcome: wu.OutcomeSuccess,
		Output: wu.HashOf([]byte("4\n")), OutputSize: 2}, nil); e != nil {
		t.Fatalf("retry of an accepted report: %v", e)
	}
	if after := h.status().Hosts[0].Credit; after != before {
		t.Fatalf("retry changed credit %v → %v", before, after)
	}
	var rr wu.ResultsReply
	rr, err := h.m.Results(wu.ResultsQuery{Batch: "b1"})
	if err != nil || len(rr.Units) != 3 || rr.Units[0].Output != wu.HashOf([]byte("4\n")) || rr.Units[0].OutputSize != 2 {
		t.Fatalf("results %+v %v", rr, err)
	}
}

func TestRetriedWorkRequestAssignsOnce(t *testing.T) {
	h := newHarness(t)
	h.setup(4, 1, 1)
	h.hello("a")
	var r1, r2 wu.WorkReply
	h.must(h.reqSeq("a", 5, wu.OpWork, wu.WorkRequest{V: 1, Seq: 5, Slots: 1}, &r1))
	h.must(h.reqSeq("a", 5, wu.OpWork, wu.WorkRequest{V: 1, Seq: 5, Slots: 1}, &r2))
	if len(r1.Assignments) != 1 || r1.Assignments[0].Task != r2.Assignments[0].Task {
		t.Fatalf("retry got %+v, first %+v", r2, r1)
	}
	if n := h.batch().Tasks[wu.TaskAssigned]; n != 1 {
		t.Fatalf("%d tasks assigned after a retried request, want 1", n)
	}
	// Requests far older than the window are refused, not applied.
	for s := uint64(6); s < 30; s++ {
		h.must(h.reqSeq("a", s, wu.OpBeat, wu.Beat{V: 1, Seq: s}, nil))
	}
	if e := h.reqSeq("a", 3, wu.OpWork, wu.WorkRequest{V: 1, Seq: 3, Slots: 1}, nil); e == nil || e.Code != wu.CodeConflict {
		t.Fatalf("stale request: %v", e)
	}
}

func TestLeaseExpiryReissuesToAnotherHost(t *testing.T) {
	h := newHarness(t)
	h.setup(1, 1, 1)
	h.hello("a")
	h.hello("b")
	a := h.work("a", 1)
	if len(a) != 1 {
		t.Fatal("no work for a")
	}
	if got := h.work("b", 1); len(got) != 0 {
		t.Fatalf("b got %v while a holds the only task", got)
	}
	// Beats keep the lease alive past its first term.
	for i := 0; i < 4; i++ {
		h.tick(20 * time.Second)
		if abort := h.beat("a", a[0].Task, 0.5); len(abort) != 0 {
			t.Fatalf("beat within the lease told a to abort %v", abort)
		}
	}
	h.pass(31 * time.Second)
	b := h.work("b", 1)
	if len(b) != 1 || b[0].Task != a[0].Task {
		t.Fatalf("after a's lease ran out b got %+v, want %s", b, a[0].Task)
	}
	if abort := h.beat("a", a[0].Task, 0); len(abort) != 1 {
		t.Fatalf("a was not told to abort the task it lost: %v", abort)
	}
	if e := h.report("a", a[0].Task, "x"); e == nil || e.Code != wu.CodeNotAssigned {
		t.Fatalf("late report from the lost holder: %v", e)
	}
	h.must(h.report("b", b[0].Task, "x"))
	if st := h.m.Status(); st.Hosts[0].Lost != 1 || st.Hosts[1].Valid != 1 || h.batch().Valid != 1 {
		t.Fatalf("status after reissue: %+v", st)
	}
}

func TestDisagreementIssuesMoreReplicasThenErrors(t *testing.T) {
	h := newHarness(t)
	h.setup(1, 2, 2)
	for _, id := range []string{"a", "b", "c", "d", "e", "f", "g"} {
		h.hello(id)
	}
	a, b := h.work("a", 1), h.work("b", 1)
	h.must(h.report("a", a[0].Task, "1"))
	h.must(h.report("b", b[0].Task, "2"))
	if h.batch().Tasks[wu.TaskUnsent] != 1 {
		t.Fatalf("disagreement did not issue a third replica: %+v", h.batch())
	}
	c := h.work("c", 1)
	h.must(h.report("c", c[0].Task, "2"))
	if bs := h.batch(); bs.Valid != 1 {
		t.Fatalf("two of three agreeing: %+v", bs)
	}
	st := h.status()
	if st.Hosts[0].Invalid != 1 || st.Hosts[0].Credit != 0 || st.Hosts[1].Valid != 1 || st.Hosts[2].Valid != 1 {
		t.Fatalf("validity per host: %+v", st.Hosts)
	}
	rr, _ := h.m.Results(wu.ResultsQuery{Batch: "b1"})
	if rr.Units[0].Output != wu.HashOf([]byte("2")) {
		t.Fatalf("canonical %s", rr.Units[0].Output)
	}

	// A unit whose replicas never agree ends in error after MaxTasks.
	h2 := newHarness(t)
	h2.setup(1, 2, 2)
	for i, id := range []string{"a", "b", "c", "d", "e", "f", "g"} {
		h2.hello(id)
		if as := h2.work(id, 1); len(as) == 1 {
			h2.must(h2.report(id, as[0].Task, string(rune('0'+i))))
		}
	}
	if bs := h2.batch(); bs.Errored != 1 || bs.Tasks[wu.TaskReported] != 6 {
		t.Fatalf("never-agreeing unit: %+v", bs)
	}
}

func TestBadRequestsChangeNothing(t *testing.T) {
	h := newHarness(t)
	h.setup(1, 1, 1)
	h.hello("a")
	before := h.snapshot()
	cases := []struct {
		name string
		cmd  wu.Command
		code string
	}{
		{"unknown app", wu.Command{V: 1, Op: wu.OpSubmit, Body: wu.Encode(wu.Submit{V: 1, Batch: "x", App: "nope", Units: []wu.UnitSpec{{}}})}, wu.CodeNotFound},
		{"quorum over replication", wu.Command{V: 1, Op: wu.OpSubmit, Body: wu.Encode(wu.Submit{V: 1, Batch: "x", App: "primes", Replication: 1, Quorum: 2, Units: []wu.UnitSpec{{}}})}, wu.CodeBadRequest},
		{"duplicate unit name", wu.Command{V: 1, Op: wu.OpSubmit, Body: wu.Encode(wu.Submit{V: 1, Batch: "b1", App: "primes", Units: []wu.UnitSpec{{Name: "000000"}}})}, wu.CodeConflict},
		{"malformed body", wu.Command{V: 1, Op: wu.OpSubmit, Body: json.RawMessage(`[1,2]`)}, wu.CodeBadRequest},
		{"unknown op", wu.Command{V: 1, Op: "explode"}, wu.CodeBadRequest},
		{"unregistered host", wu.Command{V: 1, Op: wu.OpWork, Host: "zz", Body: wu.Encode(wu.WorkRequest{V: 1, Seq: 1, Slots: 1})}, wu.CodeNotFound},
		{"report for a task never assigned", wu.Command{V: 1, Op: wu.OpResult, Host: "a", Body: wu.Encode(wu.Report{V: 1, Seq: 1, Task: "wu1_0", Outcome: wu.OutcomeSuccess, Output: wu.HashOf(nil)})}, wu.CodeNotAssigned},
		{"report for a task that does not exist", wu.Command{V: 1, Op: wu.OpResult, Host: "a", Body: wu.Encode(wu.Report{V: 1, Seq: 1, Task: "nope", Outcome: wu.OutcomeFailure})}, wu.CodeNotAssigned},
		{"report with bad hash", wu.Command{V: 1, Op: wu.OpResult, Host: "a", Body: wu.Encode(wu.Report{V: 1, Seq: 1, Task: "wu1_0", Outcome: wu.OutcomeSuccess, Output: "zz"})}, wu.CodeBadRequest},
	}
	for _, c := range cases {
		var ack wu.Ack
		if err := json.Unmarshal(h.apply(c.cmd), &ack); err != nil || ack.Error == nil || ack.Error.Code != c.code {
			t.Errorf("%s: reply %+v (%v), want code %s", c.name, ack.Error, err, c.code)
		}
	}
	if err := json.Unmarshal(h.apply(wu.Command{}), new(wu.Ack)); err != nil {
		t.Fatal(err)
	}
	raw := h.m.Apply(fsm.Entry{Seq: 999, Time: h.now, Payload: []byte("\x00not json")})
	if !bytes.Contains(raw, []byte(wu.CodeBadRequest)) {
		t.Fatalf("garbage entry reply %s", raw)
	}
	if after := h.snapshot(); !bytes.Equal(before, after) {
		t.Fatalf("rejected requests changed the state")
	}
}

func TestFailuresAreRetriedUpToALimit(t *testing.T) {
	h := newHarness(t)
	h.setup(1, 1, 1)
	for i := 0; i < 4; i++ {
		id := string(rune('a' + i))
		h.hello(id)
		as := h.work(id, 1)
		if len(as) != 1 {
			t.Fatalf("round %d: no task", i)
		}
		h.must(h.req(id, wu.OpResult, wu.Report{V: 1, Seq: 1, Task: as[0].Task, Outcome: wu.OutcomeFailure, ExitCode: 2, Reason: "boom"}, nil))
	}
	h.hello("e")
	if as := h.work("e", 1); len(as) != 0 {
		t.Fatalf("a unit in error still hands out %v", as)
	}
	if bs := h.batch(); bs.Errored != 1 || bs.Units != 1 {
		t.Fatalf("after repeated failures: %+v", bs)
	}
	rr, _ := h.m.Results(wu.ResultsQuery{Batch: "b1"})
	if rr.Units[0].State != wu.WorkUnitError || rr.Units[0].Tasks != 4 {
		t.Fatalf("unit %+v, want error after 4 tasks", rr.Units[0])
	}
}

func TestSnapshotRestoreContinuesIdentically(t *testing.T) {
	h := newHarness(t)
	h.setup(5, 2, 2)
	h.hello("a")
	h.hello("b")
	as := h.work("a", 2)
	h.must(h.report("a", as[0].Task, "7"))
	snap := h.snapshot()

	m2 := New(Config{Lease: 30 * time.Second})
	if err := m2.Restore(bytes.NewReader(snap)); err != nil {
		t.Fatal(err)
	}
	var again bytes.Buffer
	if err := m2.Snapshot(&again); err != nil || !bytes.Equal(again.Bytes(), snap) {
		t.Fatalf("restored state differs from the snapshot (%v)", err)
	}
	// The same entries applied to both give the same replies.
	cmds := []wu.Command{
		{V: 1, Op: wu.OpWork, Host: "b", Seq: 100, Body: wu.Encode(wu.WorkRequest{V: 1, Seq: 100, Slots: 3})},
		{V: 1, Op: wu.OpResult, Host: "a", Seq: 101, Body: wu.Encode(wu.Report{V: 1, Seq: 101, Task: as[1].Task, Outcome: wu.OutcomeSuccess, Output: wu.HashOf([]byte("7")), OutputSize: 1})},
	}
	for i, c := range cmds {
		e := fsm.Entry{Seq: uint64(1000 + i), Time: h.now, Payload: wu.Encode(c)}
		if r1, r2 := h.m.Apply(e), m2.Apply(e); !bytes.Equal(r1, r2) {
			t.Fatalf("entry %d: replies differ:\n%s\n%s", i, r1, r2)
		}
	}
	for _, bad := range [][]byte{nil, []byte("{"), []byte(`{"now":"2026-01-01T00:00:00Z"}`)} {
		if err := New(Config{}).Restore(bytes.NewReader(bad)); err == nil {
			t.Errorf("restore of %q succeeded", bad)
		}
	}
}

func TestHolderKeepsATaskItBeatsForBeforeAnyoneElseTakesIt(t *testing.T) {
	h := newHarness(t)
	h.setup(1, 1, 1)
	h.hello("a")
	h.hello("b")
	a := h.work("a", 1)
	// The holder was silent longer than the lease (its network was down):
	// the task is back in the queue.
	h.pass(2 * time.Minute)
	if n := h.batch().Tasks[wu.TaskUnsent]; n != 1 {
		t.Fatalf("after the lease ran out: %+v", h.batch())
	}
	if abort := h.beat("a", a[0].Task, 0.7); len(abort) != 0 {
		t.Fatalf("the holder, still computing, was told to abort %v", abort)
	}
	if got := h.work("b", 1); len(got) != 0 {
		t.Fatalf("b got %+v, a task its holder kept", got)
	}
	h.must(h.report("a", a[0].Task, "x"))
	if bs := h.batch(); bs.Valid != 1 || bs.Tasks[wu.TaskReported] != 1 {
		t.Fatalf("batch %+v", bs)
	}
	// Once another host has it, the old holder is told to stop.
	h2 := newHarness(t)
	h2.setup(1, 1, 1)
	h2.hello("a")
	h2.hello("b")
	a2 := h2.work("a", 1)
	h2.pass(2 * time.Minute)
	if got := h2.work("b", 1); len(got) != 1 {
		t.Fatal("b did not get the lost task")
	}
	if abort := h2.beat("a", a2[0].Task, 0); len(abort) != 1 {
		t.Fatalf("old holder not told to abort: %v", abort)
	}
}

// The project is down longer than a lease (stopped for an upgrade): its
// volunteers, unable to beat meanwhile, keep their tasks, with a lease's
// time from the first entry after the gap to beat again.
func TestLeasesOutliveTheProjectsOutage(t *testing.T) {
	h := newHarness(t)
	h.setup(1, 2, 2)
	for _, host := range []string{"a", "b", "c"} {
		h.hello(host)
	}
	a, b := h.work("a", 1), h.work("b", 1)
	if len(a) != 1 || len(b) != 1 {
		t.Fatalf("work: a %v, b %v", a, b)
	}
	h.pass(20 * time.Second) // b's lease has 10 s left, a's too

	h.tick(time.Hour) // the first tick after an hour's outage
	if got := h.batch().Tasks[wu.TaskAssigned]; got != 2 {
		t.Fatalf("after the outage %d tasks assigned, want both kept: %+v", got, h.batch())
	}
	if got := h.work("c", 1); len(got) != 0 {
		t.Fatalf("c got %+v right after the outage", got)
	}
	// a beats again within the new lease and keeps its task; b never comes
	// back, and loses its task a lease after the outage.
	h.pass(25 * time.Second)
	if abort := h.beat("a", a[0].Task, 0.5); len(abort) != 0 {
		t.Fatalf("a, beating within the new lease, was told to abort %v", abort)
	}
	h.pass(10 * time.Second)
	c := h.work("c", 1)
	if len(c) != 1 || c[0].Task != b[0].Task {
		t.Fatalf("a lease after the outage c got %+v, want b's task %s", c, b[0].Task)
	}
	h.must(h.report("a", a[0].Task, "x"))
	h.must(h.report("c", c[0].Task, "x"))
	if bs := h.batch(); bs.Valid != 1 || bs.Tasks[wu.TaskReported] != 2 {
		t.Fatalf("batch %+v", bs)
	}
}

// A gap shorter than a lease can still take a task from a host that beats
// on time: its last beat came just before the gap, and its next one
// lands after it. Any gap longer than Lease-2·Beat (10 s here) is an
// outage.
func TestShortOutageSparesAHostThatBeatsOnTime(t *testing.T) {
	h := newHarness(t)
	h.setup(1, 1, 1)
	h.hello("a")
	h.hello("b")
	a := h.work("a", 1)
	beat := func() {
		if abort := h.beat("a", a[0].Task, 0.5); len(abort) != 0 {
			t.Fatalf("a was told to abort %v", abort)
		}
	}
	h.pass(9 * time.Second)
	beat()
	h.tick(25 * time.Second) // an election, say: no tick for 25 s
	h.pass(8 * time.Second)  // a's next beat is due 10 s after the last
	if got := h.work("b", 1); len(got) != 0 {
		t.Fatalf("b got %+v, the task of a host that beat on time", got)
	}
	beat()
	h.must(h.report("a", a[0].Task, "x"))
	if bs := h.batch(); bs.Valid != 1 {
		t.Fatalf("batch %+v", bs)
	}
}

// A work request that names every task the host holds gets back those the
// project gave it and it does not name: the reply that carried them was
// lost. A request that names them, or says nothing of what the host holds,
// gets none again.
func TestWorkRequestGetsLostTasksAgain(t *testing.T) {
	h := newHarness(t)
	h.setup(3, 1, 1)
	h.hello("a")
	given := h.work("a", 2) // the reply never reached a
	if len(given) != 2 {
		t.Fatalf("a got %d tasks, want 2", len(given))
	}
	ids := []string{given[0].Task, given[1].Task}
	slices.Sort(ids)

	var r wu.WorkReply
	h.must(h.req("a", wu.OpWork, wu.WorkRequest{V: 1, Seq: 1, Slots: 1}, &r))
	if len(r.Assignments) != 1 || slices.Contains(ids, r.Assignments[0].Task) {
		t.Fatalf("a request that names nothing held got %+v, want the third task alone", r.Assignments)
	}
	third := r.Assignments[0].Task

	h.tick(20 * time.Second)
	var again wu.WorkReply
	h.must(h.req("a", wu.OpWork, wu.WorkRequest{V: 1, Seq: 1, Slots: 1, Held: []string{third}, HeldAll: true}, &again))
	var got []string
	for _, a := range again.Assignments {
		got = append(got, a.Task)
		if a.App != "primes" || len(a.Args) != 2 || a.Deadline.IsZero() {
			t.Errorf("sent again without what runs it: %+v", a)
		}
	}
	if !slices.Equal(got, ids) {
		t.Fatalf("sent again %v, want %v in task order", got, ids)
	}
	if n := h.batch().Tasks[wu.TaskAssigned]; n != 3 {
		t.Fatalf("%d tasks assigned, want the same 3", n)
	}
	// Their leases were renewed: 40 s after they were given, 20 s after
	// they were sent again, with a lease of 30 s, a still holds them.
	h.pass(20 * time.Second)
	for _, id := range ids {
		h.must(h.report("a", id, "x"))
	}
	var last wu.WorkReply
	h.must(h.req("a", wu.OpWork, wu.WorkRequest{V: 1, Seq: 1, Slots: 1, Held: []string{third}, HeldAll: true}, &last))
	if len(last.Assignments) != 0 {
		t.Fatalf("a request naming all held got %+v", last.Assignments)
	}
}
