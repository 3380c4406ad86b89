package sched

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/momonga-project/momonga/project/credit"
	"github.com/momonga-project/momonga/vpeer/fsm"
	wu "github.com/momonga-project/momonga/workunits"
)

func nkeyOf(i int) string { return "U" + strings.Repeat(string(rune('A'+i%26)), 55) }

// addUser creates a user whose account key is "key-<name>-0123456789".
func (h *harness) addUser(name, team string) {
	h.t.Helper()
	h.must(h.req("adm:test", wu.OpUserAdd, wu.UserAdd{V: 1, Name: name, Email: name + "@example.org", KeyHash: wu.AccountKeyHash("key-" + name + "-0123456789"), Team: team}, nil))
}

// attachHost attaches a host for user and says hello from it; it returns
// the host id the project gave.
func (h *harness) attachHost(user string, n int) string {
	h.t.Helper()
	raw := h.apply(wu.Command{V: 1, Op: wu.OpAttach, Body: wu.Encode(wu.Attach{V: 1, KeyHash: wu.AccountKeyHash("key-" + user + "-0123456789"),
		NKey: nkeyOf(n), Host: wu.HostInfo{Name: fmt.Sprintf("%s-%d", user, n), CPUs: 1, FLOPS: 2e9}})})
	var r wu.AttachReply
	if err := json.Unmarshal(raw, &r); err != nil || r.Error != nil || r.Host == "" {
		h.t.Fatalf("attach: %s %v", raw, err)
	}
	h.hello(r.Host)
	return r.Host
}

func (h *harness) addApp(name string, pol wu.Policy) {
	h.t.Helper()
	h.must(h.req("adm:test", wu.OpAddApp, wu.AddApp{V: 1, Name: name, Hash: wu.HashOf([]byte(name)), Size: 3, Signature: "manifest of " + name, Policy: pol}, nil))
}

// submitUnits submits n units of distinct computations (their args are
// numbered across the harness's submissions).
func (h *harness) submitUnits(app, batch string, n int, fpops float64) {
	h.t.Helper()
	spec := wu.Submit{V: 1, Batch: batch, App: app}
	for i := 0; i < n; i++ {
		h.computations++
		spec.Units = append(spec.Units, wu.UnitSpec{Args: []string{fmt.Sprint(h.computations)}, FPOps: fpops})
	}
	h.must(h.req("adm:test", wu.OpSubmit, spec, nil))
}

func (h *harness) reportCPU(host, taskID, output string, cpu float64) *wu.Error {
	return h.req(host, wu.OpResult, wu.Report{V: 1, Seq: 1, Task: taskID, Outcome: wu.OutcomeSuccess,
		Output: wu.HashOf([]byte(output)), OutputSize: int64(len(output)), CPUSeconds: cpu}, nil)
}

func (h *harness) hostStatus(id string) wu.HostStatus {
	for _, hs := range h.status().Hosts {
		if hs.ID == id {
			return hs
		}
	}
	h.t.Fatalf("no host %s", id)
	return wu.HostStatus{}
}

func TestAccountsAttachRevokeAndRestore(t *testing.T) {
	h := newHarness(t)
	h.must(h.req("adm:test", wu.OpTeamAdd, wu.TeamAdd{V: 1, Name: "crunchers"}, nil))
	h.addUser("ann", "crunchers")
	h.addUser("bob", "")
	for name, c := range map[string]wu.Command{
		"duplicate user":      {V: 1, Op: wu.OpUserAdd, Body: wu.Encode(wu.UserAdd{V: 1, Name: "ann", KeyHash: wu.AccountKeyHash("other-key-0123456")})},
		"duplicate key":       {V: 1, Op: wu.OpUserAdd, Body: wu.Encode(wu.UserAdd{V: 1, Name: "cat", KeyHash: wu.AccountKeyHash("key-ann-0123456789")})},
		"unknown team":        {V: 1, Op: wu.OpUserAdd, Body: wu.Encode(wu.UserAdd{V: 1, Name: "cat", KeyHash: wu.AccountKeyHash("cat-key-0123456789"), Team: "nope"})},
		"unknown account key": {V: 1, Op: wu.OpAttach, Body: wu.Encode(wu.Attach{V: 1, KeyHash: wu.AccountKeyHash("forged-key-0123456"), NKey: nkeyOf(9)})},
	} {
		var ack wu.Ack
		if err := json.Unmarshal(h.apply(c), &ack); err != nil || ack.Error == nil {
			t.Errorf("%s: accepted (%v)", name, err)
		}
	}
	a1 := h.attachHost("ann", 1)
	if again := h.attachHost("ann", 1); again != a1 {
		t.Fatalf("attaching the same key again gave host %s, then %s", a1, again)
	}
	raw := h.apply(wu.Command{V: 1, Op: wu.OpAttach, Body: wu.Encode(wu.Attach{V: 1, KeyHash: wu.AccountKeyHash("key-bob-0123456789"), NKey: nkeyOf(1)})})
	if !bytes.Contains(raw, []byte(wu.CodeConflict)) {
		t.Fatalf("bob attaching ann's host key: %s", raw)
	}
	b1 := h.attachHost("bob", 2)
	h.must(h.req("adm:test", wu.OpTeamJoin, wu.TeamJoin{V: 1, User: "bob", Team: "crunchers"}, nil))

	acc := h.m.Accounts()
	if len(acc.Users) != 2 || acc.Users[0].Email != "ann@example.org" || acc.Users[0].Team != "crunchers" || acc.Users[0].Hosts != 1 || len(acc.Teams) != 1 || acc.Teams[0].Members != 2 {
		t.Fatalf("accounts %+v", acc)
	}
	st, _ := json.Marshal(h.m.Status())
	if bytes.Contains(st, []byte("@example.org")) {
		t.Fatalf("the public status shows e-mail addresses: %s", st)
	}

	// A revoked host's task goes back to the queue at once; the host may
	// do nothing more and the authorisation sees it revoked.
	h.setup(1, 1, 1)
	as := h.work(a1, 1)
	if len(as) != 1 {
		t.Fatal("no work")
	}
	h.must(h.req("adm:test", wu.OpHostRevoke, wu.HostRevoke{V: 1, Host: a1}, nil))
	if e := h.req(a1, wu.OpWork, wu.WorkRequest{V: 1, Seq: 1, Slots: 1}, nil); e == nil || e.Code != wu.CodeForbidden {
		t.Fatalf("work from a revoked host: %v", e)
	}
	if got := h.work(b1, 1); len(got) != 1 || got[0].Task != as[0].Task {
		t.Fatalf("the revoked host's task did not go to another host: %+v", got)
	}
	if hc, ok := h.m.HostByNKey(nkeyOf(1)); !ok || !hc.Revoked || hc.ID != a1 {
		t.Fatalf("HostByNKey after revoke: %+v %v", hc, ok)
	}

	// Indexes come back with a restored snapshot.
	m2 := New(Config{})
	if err := m2.Restore(bytes.NewReader(h.snapshot())); err != nil {
		t.Fatal(err)
	}
	if hc, ok := m2.HostByNKey(nkeyOf(2)); !ok || hc.ID != b1 {
		t.Fatalf("restored HostByNKey: %+v %v", hc, ok)
	}
	if id, ok := m2.UserByKeyHash(wu.AccountKeyHash("key-ann-0123456789")); !ok || id != "u1" {
		t.Fatalf("restored UserByKeyHash: %q %v", id, ok)
	}
}

func TestReplicasNeverGoToOneUser(t *testing.T) {
	h := newHarness(t)
	h.addUser("ann", "")
	h.addUser("bob", "")
	ann1, ann2, bob1 := h.attachHost("ann", 1), h.attachHost("ann", 2), h.attachHost("bob", 3)
	h.setup(3, 2, 2)
	if got := h.work(ann1, 8); len(got) != 3 {
		t.Fatalf("ann's first host got %d tasks, want one replica of each of 3 units", len(got))
	}
	if got := h.work(ann2, 8); len(got) != 0 {
		t.Fatalf("ann's second host got replicas of units ann already holds: %+v", got)
	}
	if got := h.work(bob1, 8); len(got) != 3 {
		t.Fatalf("bob got %d tasks, want 3", len(got))
	}
}

func TestAdaptiveReplicationTrustsAndDistrusts(t *testing.T) {
	h := newHarness(t)
	h.m = New(Config{Lease: time.Minute, TrustAfter: 3, SpotCheck: 0.25})
	h.tick(0)
	for _, u := range []string{"ann", "bob", "cat"} {
		h.addUser(u, "")
	}
	a, b, c := h.attachHost("ann", 1), h.attachHost("bob", 2), h.attachHost("cat", 3)
	h.addApp("app", wu.Policy{Replication: 2, Quorum: 2, Adaptive: true})
	h.submitUnits("app", "b", 400, 0)

	// round gives a one task and reports out for it; b and c, honest, take
	// whatever else is out. It reports whether a's unit was validated from
	// a's result alone.
	round := func(out string) (single bool) {
		as := h.work(a, 1)
		if len(as) != 1 {
			t.Fatal("a got no work")
		}
		h.must(h.reportCPU(a, as[0].Task, out, 1))
		for _, id := range []string{b, c, b, c} {
			for _, x := range h.work(id, 1) {
				h.must(h.reportCPU(id, x.Task, "right", 1))
			}
		}
		u := h.m.st.Units[as[0].WorkUnit]
		if u.State == wu.WorkUnitPending {
			t.Fatalf("a's unit %s still pending after the round", u.ID)
		}
		return len(u.Tasks) == 1
	}
	for i := 0; i < 3; i++ {
		if round("right") {
			t.Fatalf("round %d: a's unit went single before a earned trust", i)
		}
	}
	if st := h.hostStatus(a); st.Streak < 3 {
		t.Fatalf("a's streak %d after 3 verified results", st.Streak)
	}
	singles := 0
	for i := 0; i < 40; i++ {
		if round("right") {
			singles++
		}
	}
	if singles == 0 || singles == 40 {
		t.Fatalf("trusted host: %d of 40 units single; want some, spot-checked", singles)
	}
	// A wrong result is accepted alone until a spot check catches one; then
	// the streak is gone and every unit of a's is replicated again.
	for h.hostStatus(a).Invalid == 0 {
		round("wrong")
	}
	if st := h.hostStatus(a); st.Streak != 0 {
		t.Fatalf("after an invalid result a's streak is %d", st.Streak)
	}
	for i := 0; i < 3; i++ {
		if round("right") {
			t.Fatalf("a host that lost trust got a single replica")
		}
	}
}

func TestAdaptiveDecisionsReplayIdentically(t *testing.T) {
	run := func() []byte {
		h := newHarness(t)
		h.m = New(Config{Lease: time.Minute, TrustAfter: 2, SpotCheck: 0.3})
		h.tick(0)
		h.addUser("ann", "")
		h.addUser("bob", "")
		a, b := h.attachHost("ann", 1), h.attachHost("bob", 2)
		h.addApp("app", wu.Policy{Replication: 2, Quorum: 2, Adaptive: true})
		h.submitUnits("app", "b", 60, 0)
		for i := 0; i < 60; i++ {
			for _, id := range []string{a, b} {
				for _, x := range h.work(id, 1) {
					h.must(h.reportCPU(id, x.Task, "r", 1))
				}
			}
		}
		return h.snapshot()
	}
	if !bytes.Equal(run(), run()) {
		t.Fatal("the same log gave two different states")
	}
}

func TestFuzzyValidationWaitsForTheValidator(t *testing.T) {
	h := newHarness(t)
	for _, id := range []string{"a", "b", "c"} {
		h.hello(id)
	}
	h.addApp("float", wu.Policy{Replication: 2, Quorum: 2, Tolerance: wu.Tolerance{Rel: 1e-6}})
	h.submitUnits("float", "b", 1, 0)
	a, b := h.work("a", 1), h.work("b", 1)
	h.must(h.reportCPU("a", a[0].Task, "x 1.0000000", 1))
	h.must(h.reportCPU("b", b[0].Task, "x 1.0000001", 1))
	pend := h.m.PendingComparisons(10)
	if len(pend) != 1 || pend[0].Unit != a[0].WorkUnit || pend[0].Tolerance.Rel != 1e-6 {
		t.Fatalf("pending comparisons %+v", pend)
	}
	if bs := h.batch(); bs.Valid != 0 || bs.Tasks[wu.TaskUnsent] != 0 {
		t.Fatalf("unit decided before the verdict: %+v", bs)
	}
	verdict := wu.Compare{V: 1, Unit: pend[0].Unit, A: pend[0].A, B: pend[0].B, Agree: true}
	h.must(h.req("validator", wu.OpCompare, verdict, nil))
	h.must(h.req("validator", wu.OpCompare, verdict, nil)) // a repeated verdict changes nothing
	if bs := h.batch(); bs.Valid != 1 {
		t.Fatalf("agreeing verdict did not validate: %+v", bs)
	}
	if st := h.m.Status(); st.Hosts[0].Valid != 1 || st.Hosts[1].Valid != 1 || len(h.m.PendingComparisons(10)) != 0 {
		t.Fatalf("after the verdict: %+v", st.Hosts)
	}

	// A disagreeing verdict issues another replica.
	h.submitUnits("float", "b", 1, 0)
	a, b = h.work("a", 1), h.work("b", 1)
	h.must(h.reportCPU("a", a[0].Task, "x 1.0", 1))
	h.must(h.reportCPU("b", b[0].Task, "x 2.0", 1))
	p := h.m.PendingComparisons(10)[0]
	h.must(h.req("validator", wu.OpCompare, wu.Compare{V: 1, Unit: p.Unit, A: p.A, B: p.B}, nil))
	c := h.work("c", 1)
	if len(c) != 1 || c[0].WorkUnit != a[0].WorkUnit {
		t.Fatalf("no third replica after disagreement: %+v", c)
	}
}

func TestCreditIsCappedAndRACDecays(t *testing.T) {
	h := newHarness(t)
	h.must(h.req("adm:test", wu.OpTeamAdd, wu.TeamAdd{V: 1, Name: "t"}, nil))
	h.addUser("ann", "t")
	h.addUser("bob", "t")
	a, b := h.attachHost("ann", 1), h.attachHost("bob", 2)
	h.addApp("app", wu.Policy{Replication: 2, Quorum: 2})
	const fpops = 4.32e12 // 10 Cobblestones
	h.submitUnits("app", "b", 1, fpops)
	ta, tb := h.work(a, 1), h.work(b, 1)
	// Both claim a month of CPU time: far above what the unit is worth.
	h.must(h.reportCPU(a, ta[0].Task, "r", 30*86400))
	h.must(h.reportCPU(b, tb[0].Task, "r", 30*86400))
	st := h.status()
	for _, hs := range st.Hosts {
		if math.Abs(hs.Credit-10) > 1e-9 {
			t.Fatalf("host %s granted %g, want the unit's size, 10", hs.ID, hs.Credit)
		}
	}
	if st.Users[0].Credit != 10 || st.Teams[0].Credit != 20 {
		t.Fatalf("user %g, team %g credit", st.Users[0].Credit, st.Teams[0].Credit)
	}
	// A claim below the size is granted as claimed: the lowest of the two.
	h.submitUnits("app", "b", 1, fpops)
	ta, tb = h.work(a, 1), h.work(b, 1)
	h.must(h.reportCPU(a, ta[0].Task, "r", 100)) // 100 s at 2 GFLOPS
	h.must(h.reportCPU(b, tb[0].Task, "r", 200))
	if got, want := h.hostStatus(b).Credit-10, credit.Claim(100, 2e9); math.Abs(got-want) > 1e-9 {
		t.Fatalf("granted %g, want the lower claim %g", got, want)
	}

	// With no more credit, recent average credit halves every week, for
	// hosts, users and teams alike; the clock is the log's ticks.
	before := h.status()
	h.tick(credit.HalfLife)
	after := h.status()
	for i := range before.Hosts {
		if r := after.Hosts[i].RAC / before.Hosts[i].RAC; math.Abs(r-0.5) > 1e-9 || before.Hosts[i].RAC <= 0 {
			t.Errorf("host RAC %g → %g", before.Hosts[i].RAC, after.Hosts[i].RAC)
		}
	}
	if r := after.Teams[0].RAC / before.Teams[0].RAC; math.Abs(r-0.5) > 1e-9 {
		t.Errorf("team RAC %g → %g", before.Teams[0].RAC, after.Teams[0].RAC)
	}
	if r := after.Users[1].RAC / before.Users[1].RAC; math.Abs(r-0.5) > 1e-9 {
		t.Errorf("user RAC %g → %g", before.Users[1].RAC, after.Users[1].RAC)
	}
}

func TestAssignmentsCarryTheAppSignature(t *testing.T) {
	h := newHarness(t)
	h.hello("a")
	h.addApp("app", wu.Policy{})
	h.submitUnits("app", "b", 1, 0)
	// Publishing the app again, with another module, leaves the queued unit
	// with the module and the signature it was submitted with.
	h.must(h.req("adm:test", wu.OpAddApp, wu.AddApp{V: 1, Name: "app", Hash: wu.HashOf([]byte("v2")), Size: 2, Signature: "manifest of v2"}, nil))
	as := h.work("a", 1)
	if len(as) != 1 || as[0].AppSig != "manifest of app" || as[0].AppHash != wu.HashOf([]byte("app")) {
		t.Fatalf("assignment %+v", as)
	}
}

// TestCodeSignaturesAreKeptByMD5: the BOINC code signatures an app is
// added with are kept by the md5 they sign; adding it again with a new
// runner's adds that one and keeps the others, for units submitted before;
// an entry without them, as older ones are, changes none.
func TestCodeSignaturesAreKeptByMD5(t *testing.T) {
	h := newHarness(t)
	sum := func(s string) string { return strings.Repeat(s, 32/len(s)) }
	add := func(sigs ...wu.CodeSignature) {
		h.must(h.req("adm:test", wu.OpAddApp, wu.AddApp{V: 1, Name: "app", Hash: wu.HashOf([]byte("app")), Size: 3, CodeSigs: sigs}, nil))
	}
	add(wu.CodeSignature{File: wu.CodeSignedModule, MD5: sum("aa"), Signature: "01\n.\n"},
		wu.CodeSignature{File: "x86_64-pc-linux-gnu", MD5: sum("bb"), Signature: "02\n.\n"})
	add(wu.CodeSignature{File: wu.CodeSignedModule, MD5: sum("aa"), Signature: "01\n.\n"},
		wu.CodeSignature{File: "x86_64-pc-linux-gnu", MD5: sum("cc"), Signature: "03\n.\n"})
	add()
	for md5, want := range map[string]string{sum("aa"): "01\n.\n", sum("bb"): "02\n.\n", sum("cc"): "03\n.\n"} {
		if got, ok := h.m.CodeSignature(md5); !ok || got != want {
			t.Errorf("signature of %s: %q %v, want %q", md5, got, ok, want)
		}
	}
	if _, ok := h.m.CodeSignature(sum("dd")); ok {
		t.Error("a file never signed has a signature")
	}
}

// FuzzApply feeds the state machine arbitrary commands on top of a project
// with an app, a batch, accounts and hosts: it never panics, and whatever it
// accepts still snapshots and restores to the same state.
func FuzzApply(f *testing.F) {
	for _, op := range []string{wu.OpHello, wu.OpWork, wu.OpResult, wu.OpAttach, wu.OpUserAdd, wu.OpTeamJoin, wu.OpHostRevoke, wu.OpCompare, wu.OpSubmit, wu.OpAddApp} {
		f.Add(op, "h1", uint64(7), []byte(`{"v":1,"seq":7,"slots":2,"task":"wu1_0","outcome":"success","output":"`+string(wu.HashOf(nil))+`"}`))
	}
	f.Add(wu.OpAddApp, "adm:test", uint64(9), []byte(`{"v":1,"name":"app","hash":"`+string(wu.HashOf(nil))+`","size":1,"code_sigs":[{"file":"module","md5":"`+strings.Repeat("0f", 16)+`","signature":"ab\n.\n"}]}`))
	f.Add(wu.OpCompare, "", uint64(0), []byte(`{"unit":"wu1","a":"`+string(wu.HashOf(nil))+`","b":"`+string(wu.HashOf([]byte("x")))+`","agree":true}`))
	f.Fuzz(func(t *testing.T, op, host string, seq uint64, body []byte) {
		h := newHarness(t)
		h.addUser("ann", "")
		h.attachHost("ann", 1)
		h.hello("h1")
		h.addApp("app", wu.Policy{Replication: 2, Quorum: 2, Adaptive: true, Tolerance: wu.Tolerance{Rel: 1e-6}})
		h.submitUnits("app", "b", 2, 0)
		h.work("h1", 1)
		payload := fmt.Appendf(nil, `{"v":1,"op":%q,"host":%q,"seq":%d,"body":%s}`, op, host, seq, body)
		h.seq++
		h.m.Apply(fsm.Entry{Seq: h.seq, Time: h.now, Payload: payload})
		h.tick(time.Hour)
		snap := h.snapshot()
		m2 := New(Config{})
		if err := m2.Restore(bytes.NewReader(snap)); err != nil {
			t.Fatalf("restore after %q: %v", payload, err)
		}
		var again bytes.Buffer
		if err := m2.Snapshot(&again); err != nil || !bytes.Equal(again.Bytes(), snap) {
			t.Fatalf("snapshot round trip after %q differs", payload)
		}
		_ = h.m.Status()
		_ = h.m.PendingComparisons(10)
	})
}
