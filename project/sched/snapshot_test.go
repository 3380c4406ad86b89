package sched

import (
	"bytes"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	wu "github.com/momonga-project/momonga/workunits"
)

// TestSnapshotCoversEveryField fails when a field is added to the state
// without being added to the snapshot encoding: update snapshot.go (and its
// version), then the lists here.
func TestSnapshotCoversEveryField(t *testing.T) {
	encoded := map[reflect.Type][]string{
		// Apps, Hosts, Users, Teams, NextUser, NextTeam, NextHost, AppSigs,
		// CodeSigs, Compare, Garbage, Outbox, NextOutput, AppFPOps, Servers, HostNums,
		// Progress and Counters go whole through the JSON section (type tables).
		reflect.TypeFor[state]():            {"Now", "NextUnit", "Apps", "Batches", "Units", "Tasks", "Hosts", "Sessions", "Unsent", "Retry", "Assigned", "Users", "Teams", "NextUser", "NextTeam", "NextHost", "AppSigs", "CodeSigs", "Compare", "Garbage", "Outbox", "NextOutput", "AppFPOps", "Shares", "Servers", "HostNums", "Progress", "Counters"},
		reflect.TypeFor[batch]():            {"Name", "App", "Units", "Names", "Pending", "Valid", "Errored", "Cancelled"},
		reflect.TypeFor[unit]():             {"ID", "Name", "Batch", "App", "AppHash", "AppSize", "Args", "Stdin", "FPOps", "Limits", "Deadline", "Replication", "Quorum", "MaxTasks", "State", "Tasks", "Canonical", "OutputSize", "Reason", "Adaptive", "FullQuorum", "Tolerance", "Agree", "CheckpointSeconds", "NoShare", "SharedWith", "Followers"},
		reflect.TypeFor[task]():             {"ID", "Unit", "State", "Host", "Sent", "LeaseUntil", "Deadline", "Fraction", "Outcome", "Output", "OutputSize", "CPUSeconds", "Reason", "Validity", "Lost", "Claim", "Credit", "Checkpoint", "Est", "Expect"},
		reflect.TypeFor[session]():          {"Last", "Replies", "LastUsed"},
		reflect.TypeFor[wu.Limits]():        {"MemoryBytes", "OutputBytes", "MaxSeconds"},
		reflect.TypeFor[wu.Tolerance]():     {"Abs", "Rel"},
		reflect.TypeFor[wu.CheckpointRef](): {"Hash", "Size", "Seq", "Base", "BaseSize", "Progress", "CPUSeconds"},
	}
	for typ, want := range encoded {
		var got []string
		for f := range typ.Fields() {
			got = append(got, f.Name)
		}
		if !slices.Equal(got, want) {
			t.Errorf("%s has fields %v; the snapshot encodes %v", typ, got, want)
		}
	}
}

// TestSnapshotRoundTripExact restores a state that went through every kind
// of transition and compares it field by field.
func TestSnapshotRoundTripExact(t *testing.T) {
	h := newHarness(t)
	h.setup(6, 2, 2)
	h.must(h.req("adm:test", wu.OpSubmit, wu.Submit{V: 1, Batch: "b2", App: "primes", Replication: 1, Quorum: 1,
		Units: []wu.UnitSpec{{Name: "x", Args: []string{"a", ""}, FPOps: 1e12}, {Name: "y"}}}, nil))
	for _, host := range []string{"a", "b", "c"} {
		h.hello(host)
	}
	as := h.work("a", 3)
	bs := h.work("b", 3)
	h.must(h.report("a", as[0].Task, "7"))
	h.must(h.report("b", bs[0].Task, "7"))
	h.must(h.report("b", bs[1].Task, "8"))
	h.req("b", wu.OpResult, wu.Report{V: 1, Seq: 1, Task: bs[2].Task, Outcome: wu.OutcomeFailure, Reason: "crashed"}, nil)
	h.pass(10 * time.Minute) // a's other tasks are lost and go to retry
	h.work("c", 1)
	h.req("a", wu.OpBeat, wu.Beat{V: 1, Seq: 1, Tasks: []wu.TaskProgress{{Task: as[1].Task, Fraction: 0.5}}}, nil)
	// What capability-aware scheduling, shared results and cancelling
	// keep: estimates, inputs given, units waiting for another's result,
	// a unit cancelled.
	in := wu.HashOf([]byte("input"))
	h.must(h.req("adm:test", wu.OpSubmit, wu.Submit{V: 1, Batch: "b3", App: "primes", Replication: 1, Quorum: 1,
		Units: []wu.UnitSpec{{Name: "p", Args: []string{"s"}, Stdin: in, FPOps: 1e11}, {Name: "f", Args: []string{"s"}, Stdin: in, FPOps: 1e11}, {Name: "c", Args: []string{"c"}}}}, nil))
	h.must(h.req("adm:test", wu.OpCancel, wu.Cancel{V: 1, Batch: "b3", Units: []string{"c"}}, nil))
	h.helloAs("d", 8, 1e10)
	if got := h.work("d", 8); !slices.ContainsFunc(got, func(a wu.Assignment) bool { return a.FPOps == 1e11 }) {
		t.Fatalf("d got %v", got)
	}

	h.must(h.req("adm:test", wu.OpAddApp, wu.AddApp{V: 1, Name: "signed", Hash: wu.HashOf([]byte("signed")), Size: 6,
		CodeSigs: []wu.CodeSignature{{File: wu.CodeSignedModule, MD5: strings.Repeat("ab", 16), Signature: "0123\n.\n"}}}, nil))

	// The servers hosts said hello through, one of them given up.
	h.helloThrough("e", "leaf-1")
	h.helloThrough("f", "leaf-2")
	h.helloThrough("f", "leaf-3")

	snap := h.snapshot()
	m2 := New(Config{Lease: 30 * time.Second})
	if err := m2.Restore(bytes.NewReader(snap)); err != nil {
		t.Fatal(err)
	}
	if len(h.m.st.CodeSigs) == 0 {
		t.Fatal("the state lacks code signatures")
	}
	if len(h.m.st.Retry) == 0 || len(h.m.st.Assigned) == 0 || len(h.m.st.Shares) == 0 || len(h.m.st.Hosts["d"].Given) == 0 || !slices.Equal(h.m.st.Servers, []string{"leaf-1", "leaf-3"}) {
		t.Fatalf("the state lacks lost or assigned tasks, shares or inputs given: retry %v, assigned %v, shares %v", h.m.st.Retry, h.m.st.Assigned, h.m.st.Shares)
	}
	if !reflect.DeepEqual(h.m.st, m2.st) {
		t.Fatalf("restored state differs:\n%+v\n%+v", h.m.st, m2.st)
	}
	for _, n := range []int{0, 5, len(snap) / 2, len(snap) - 1} {
		if err := New(Config{}).Restore(bytes.NewReader(snap[:n])); err == nil {
			t.Errorf("restore of the first %d of %d bytes succeeded", n, len(snap))
		}
	}
	bad := bytes.Clone(snap)
	bad[len("msched")] = 99 // version
	if err := New(Config{}).Restore(bytes.NewReader(bad)); err == nil || !strings.Contains(err.Error(), "version") {
		t.Errorf("restore of an unknown version: %v", err)
	}
}

func TestSnapshotRefusesInconsistentState(t *testing.T) {
	h := newHarness(t)
	h.setup(2, 1, 1)
	h.m.st.Unsent = append(h.m.st.Unsent, "ghost")
	var buf bytes.Buffer
	if err := h.m.Snapshot(&buf); err == nil {
		t.Fatal("snapshot of a state queueing a task that does not exist succeeded")
	}
}

// TestSnapshotSizeEstimate: the estimate the virtual peer spaces snapshots
// by is within a factor of two of the real size.
func TestSnapshotSizeEstimate(t *testing.T) {
	for _, units := range []int{100, 5000} {
		h := loaded(t, units)
		var buf bytes.Buffer
		if err := h.m.Snapshot(&buf); err != nil {
			t.Fatal(err)
		}
		if est, real := h.m.SnapshotSize(), buf.Len(); est < real/2 || est > 2*real {
			t.Errorf("%d units: estimated %d bytes, snapshot has %d", units, est, real)
		}
	}
}

// TestOlderSnapshotsStillRestore: a snapshot in the layout of version 3,
// before capability-aware scheduling and shared results, restores to the
// same state less what that version did not keep, and the scheduler goes
// on from it.
func TestOlderSnapshotsStillRestore(t *testing.T) {
	h := newHarness(t)
	h.setup(6, 2, 2)
	h.helloAs("a", 2, 1e9)
	h.helloAs("b", 2, 1e9)
	as := h.work("a", 2)
	h.must(h.report("a", as[0].Task, "7"))
	h.work("b", 2)
	var buf bytes.Buffer
	if err := h.m.snapshotVersion(&buf, outboxVersion); err != nil {
		t.Fatal(err)
	}
	m2 := New(Config{Lease: 30 * time.Second})
	if err := m2.Restore(&buf); err != nil {
		t.Fatal(err)
	}
	for _, tk := range h.m.st.Tasks {
		tk.Est, tk.Expect = 0, 0
	}
	for _, hs := range h.m.st.Hosts {
		hs.free = h.m.freeAt(hs) // derived from Expect
	}
	h.m.st.Shares = map[wu.Hash]string{}
	if !reflect.DeepEqual(h.m.st, m2.st) {
		t.Fatalf("version 3 restored differs:\n%+v\n%+v", h.m.st, m2.st)
	}
	h.m = m2
	if got := h.work("b", 2); len(got) == 0 {
		t.Fatal("no work after restoring a version 3 snapshot")
	}
}
