package accounting

import (
	"bytes"
	"encoding/json"
	"math"
	"math/rand/v2"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/momonga-project/momonga/project/credit"
	"github.com/momonga-project/momonga/vpeer/fsm"
	wu "github.com/momonga-project/momonga/workunits"
)

var t0 = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

func grants(from, to uint64) []Grant {
	var gs []Grant
	for id := from; id <= to; id++ {
		g := Grant{ID: id, Task: "wu1_0", Host: "h1", User: "u1", Team: "t1", Credit: float64(id), Sent: t0, At: t0.Add(time.Duration(id) * time.Hour)}
		if id%2 == 0 {
			g.Host, g.User, g.Team = "h2", "u2", ""
		}
		gs = append(gs, g)
	}
	return gs
}

// deliver applies a delivery through Apply, as a member does, and decodes
// the receipt.
func deliver(t *testing.T, m *Machine, seq uint64, d Delivery) Receipt {
	t.Helper()
	var rc Receipt
	if err := json.Unmarshal(m.Apply(fsm.Entry{Seq: seq, Payload: wu.Encode(d)}), &rc); err != nil {
		t.Fatal(err)
	}
	return rc
}

func TestDuplicatesAreCountedOnce(t *testing.T) {
	m := New()
	rc := deliver(t, m, 1, Delivery{V: 1, Source: "sched", Grants: grants(1, 3)})
	if rc.Error != nil || rc.Through != 3 || rc.Applied != 3 || rc.Dups != 0 {
		t.Fatalf("first delivery: %+v", rc)
	}
	// Resent from the start, overlapping, and a whole repeat.
	rc = deliver(t, m, 2, Delivery{V: 1, Source: "sched", Grants: grants(2, 5)})
	if rc.Error != nil || rc.Through != 5 || rc.Applied != 2 || rc.Dups != 2 {
		t.Fatalf("overlapping delivery: %+v", rc)
	}
	rc = deliver(t, m, 3, Delivery{V: 1, Source: "sched", Grants: grants(1, 5)})
	if rc.Error != nil || rc.Through != 5 || rc.Applied != 0 || rc.Dups != 5 {
		t.Fatalf("repeated delivery: %+v", rc)
	}
	total, results := m.Totals()
	if total != 1+2+3+4+5 || results != 5 {
		t.Fatalf("totals %g credit, %d results; want 15 and 5", total, results)
	}
	if h1 := m.Ledger("sched", nil).Host("h1"); h1.Credit != 1+3+5 || h1.Results != 3 {
		t.Fatalf("h1: %+v", h1)
	}
	l := m.Ledger("sched", nil)
	if l.User("u2").Credit != 2+4 || l.Team("t1").Credit != 1+3+5 || l.Team("").Credit != 0 {
		t.Fatalf("u2 %+v, t1 %+v", l.User("u2"), l.Team("t1"))
	}
	// A probe asks only how far the source is.
	if rc := deliver(t, m, 4, Delivery{V: 1, Source: "sched"}); rc.Through != 5 || rc.Error != nil {
		t.Fatalf("probe: %+v", rc)
	}
	if rc := deliver(t, m, 5, Delivery{V: 1, Source: "other"}); rc.Through != 0 {
		t.Fatalf("another source's probe: %+v", rc)
	}
}

func TestAGapIsRefusedAndNamesWhereToResend(t *testing.T) {
	m := New()
	deliver(t, m, 1, Delivery{V: 1, Source: "sched", Grants: grants(1, 2)})
	rc := deliver(t, m, 2, Delivery{V: 1, Source: "sched", Grants: grants(4, 6)})
	if rc.Error == nil || rc.Error.Code != wu.CodeConflict || !strings.Contains(rc.Error.Message, "resend from 3") || rc.Through != 2 || rc.Applied != 0 {
		t.Fatalf("gap: %+v", rc)
	}
	if total, _ := m.Totals(); total != 3 {
		t.Fatalf("a refused delivery changed the totals: %g", total)
	}
	rc = deliver(t, m, 3, Delivery{V: 1, Source: "sched", Grants: grants(3, 6)})
	if rc.Error != nil || rc.Through != 6 || rc.Applied != 4 {
		t.Fatalf("resend: %+v", rc)
	}
}

func TestBadDeliveriesChangeNothing(t *testing.T) {
	bad := map[string][]byte{
		"not json":         []byte("{"),
		"no source":        wu.Encode(Delivery{V: 1, Grants: grants(1, 1)}),
		"newer version":    wu.Encode(Delivery{V: Version + 1, Source: "sched"}),
		"not consecutive":  wu.Encode(Delivery{V: 1, Source: "sched", Grants: append(grants(1, 1), grants(3, 3)...)}),
		"negative credit":  wu.Encode(Delivery{V: 1, Source: "sched", Grants: []Grant{{ID: 1, Host: "h", Credit: -1}}}),
		"no host":          wu.Encode(Delivery{V: 1, Source: "sched", Grants: []Grant{{ID: 1, Credit: 1}}}),
		"team but no user": wu.Encode(Delivery{V: 1, Source: "sched", Grants: []Grant{{ID: 1, Host: "h", Team: "t", Credit: 1}}}),
		"id zero":          wu.Encode(Delivery{V: 1, Source: "sched", Grants: []Grant{{Host: "h", Credit: 1}}}),
		"opening of two":   wu.Encode(Delivery{V: 1, Source: "sched", Grants: []Grant{{ID: 1, Opening: true, Host: "h", User: "u", Credit: 1}}}),
		"grant with RAC":   wu.Encode(Delivery{V: 1, Source: "sched", Grants: []Grant{{ID: 1, Host: "h", Credit: 1, RAC: credit.Average{Avg: 1}}}}),
		"grant w/ results": wu.Encode(Delivery{V: 1, Source: "sched", Grants: []Grant{{ID: 1, Host: "h", Credit: 1, Results: 3}}}),
	}
	for name, payload := range bad {
		m := New()
		var before bytes.Buffer
		_ = m.Snapshot(&before)
		var rc Receipt
		if err := json.Unmarshal(m.Apply(fsm.Entry{Seq: 1, Payload: payload}), &rc); err != nil || rc.Error == nil || rc.Error.Code != wu.CodeBadRequest {
			t.Errorf("%s: receipt %+v (%v), want a bad_request error", name, rc, err)
		}
		var after bytes.Buffer
		_ = m.Snapshot(&after)
		if !bytes.Equal(before.Bytes(), after.Bytes()) {
			t.Errorf("%s changed the state", name)
		}
	}
}

func TestRACFollowsTheGrantTimes(t *testing.T) {
	m := New()
	g := Grant{ID: 1, Host: "h", User: "u", Team: "t", Credit: 100, Sent: t0, At: t0.Add(time.Hour)}
	m.Receive(Delivery{V: 1, Source: "sched", Grants: []Grant{g}})
	var want credit.Average
	want.Add(g.At, g.Sent, g.Credit)
	a := m.Ledger("sched", nil).Team("t")
	if a.RAC != want {
		t.Fatalf("RAC %+v, want %+v", a.RAC, want)
	}
	// Displayed a half-life later it has halved.
	st := []wu.TeamStatus{{ID: "t"}}
	m.Ledger("sched", nil).Fill(g.At.Add(credit.HalfLife), nil, nil, st)
	if r := st[0].RAC / want.Avg; math.Abs(r-0.5) > 1e-9 || st[0].Credit != 100 {
		t.Fatalf("team after a half-life: %+v (ratio %g)", st[0], r)
	}
}

func TestOpeningBalancesCarryCreditOver(t *testing.T) {
	m := New()
	old := credit.Average{Avg: 8, Time: t0}
	rc := m.Receive(Delivery{V: 1, Source: "sched", Grants: []Grant{
		{ID: 1, Opening: true, Host: "h", Credit: 50, RAC: old, Results: 4},
		{ID: 2, Opening: true, Team: "t", Credit: 70, RAC: old},
		{ID: 3, Host: "h", User: "u", Team: "t", Credit: 10, Sent: t0, At: t0.Add(credit.HalfLife)},
	}})
	if rc.Error != nil || rc.Through != 3 {
		t.Fatalf("receipt %+v", rc)
	}
	l := m.Ledger("sched", nil)
	h := l.Host("h")
	var want credit.Average
	want = old
	want.Add(t0.Add(credit.HalfLife), t0, 10)
	if h.Credit != 60 || h.Results != 5 || math.Abs(h.RAC.Avg-want.Avg) > 1e-9 {
		t.Fatalf("host after its opening balance and a grant: %+v, want RAC %+v", h, want)
	}
	if u, tm := l.User("u"), l.Team("t"); u.Credit != 10 || u.Results != 1 || tm.Credit != 80 || tm.Results != 1 {
		t.Fatalf("user %+v, team %+v", u, tm)
	}
}

func TestLedgerAddsPendingGrantsOnce(t *testing.T) {
	m := New()
	m.Receive(Delivery{V: 1, Source: "sched", Grants: grants(1, 2)})
	// The outbox still holds 1 and 2 (not yet acknowledged) and 3 (not yet
	// delivered): only 3 is added.
	l := m.Ledger("sched", grants(1, 3))
	hosts := []wu.HostStatus{{ID: "h1"}, {ID: "h2"}, {ID: "h3"}}
	users := []wu.UserStatus{{ID: "u1"}}
	l.Fill(t0, hosts, users, nil)
	if hosts[0].Credit != 1+3 || hosts[1].Credit != 2 || hosts[2].Credit != 0 || users[0].Credit != 4 {
		t.Fatalf("hosts %+v users %+v", hosts, users)
	}
	if total, _ := m.Totals(); total != 3 {
		t.Fatalf("Ledger changed the machine: total %g", total)
	}
}

// jsonSnapshot is m's state as the JSON snapshots of versions 1 and 2
// wrote it.
func jsonSnapshot(t *testing.T, m *Machine) string {
	t.Helper()
	b, err := json.Marshal(m.st)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestJSONSnapshotRestoresToTheSameState: a server upgraded restores the
// JSON snapshot it wrote before to the state the binary one holds.
func TestJSONSnapshotRestoresToTheSameState(t *testing.T) {
	m := New()
	m.Receive(Delivery{V: 1, Source: "sched", Grants: randomGrants(rand.New(rand.NewPCG(3, 4)), 2000, 40)})
	var want bytes.Buffer
	if err := m.Snapshot(&want); err != nil {
		t.Fatal(err)
	}
	r := New()
	if err := r.Restore(strings.NewReader(jsonSnapshot(t, m))); err != nil {
		t.Fatal(err)
	}
	var got bytes.Buffer
	_ = r.Snapshot(&got)
	if !bytes.Equal(got.Bytes(), want.Bytes()) {
		t.Fatal("the JSON snapshot restores to another state")
	}
	now := t0.Add(50 * 24 * time.Hour)
	for k := range kinds {
		if !reflect.DeepEqual(r.Board(k, ByRAC, 0, 1000, now), m.Board(k, ByRAC, 0, 1000, now)) {
			t.Errorf("%s by RAC differ after a restore", k)
		}
	}
	if json.Valid(want.Bytes()) || want.Len() > len(jsonSnapshot(t, m))/2 {
		t.Fatalf("binary snapshot %d bytes, JSON %d", want.Len(), len(jsonSnapshot(t, m)))
	}
}

func TestSnapshotRoundTrip(t *testing.T) {
	m := New()
	m.Receive(Delivery{V: 1, Source: "sched", Grants: grants(1, 7)})
	m.Receive(Delivery{V: 1, Source: "other", Grants: grants(1, 1)})
	var a bytes.Buffer
	if err := m.Snapshot(&a); err != nil {
		t.Fatal(err)
	}
	r := New()
	if err := r.Restore(bytes.NewReader(a.Bytes())); err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	_ = r.Snapshot(&b)
	if !bytes.Equal(a.Bytes(), b.Bytes()) {
		t.Fatalf("snapshot changed through a restore:\n%s\n%s", a.Bytes(), b.Bytes())
	}
	if r.Through("sched") != 7 || r.Through("other") != 1 {
		t.Fatalf("restored sources: %d, %d", r.Through("sched"), r.Through("other"))
	}
	// The restored machine goes on de-duplicating where the first left off.
	if rc := r.Receive(Delivery{V: 1, Source: "sched", Grants: grants(5, 8)}); rc.Applied != 1 || rc.Dups != 3 {
		t.Fatalf("after restore: %+v", rc)
	}
}

func TestRestoreRefusesBadSnapshotsAndKeepsTheState(t *testing.T) {
	m := New()
	m.Receive(Delivery{V: 1, Source: "sched", Grants: grants(1, 2)})
	good := jsonSnapshot(t, m)
	var bin bytes.Buffer
	_ = m.Snapshot(&bin)
	bad := map[string]string{
		"truncated":        good[:len(good)/2],
		"newer version":    strings.Replace(good, `"v":2`, `"v":3`, 1),
		"unknown field":    strings.Replace(good, `"v":2`, `"v":2,"x":1`, 1),
		"binary truncated": bin.String()[:bin.Len()-1],
		"binary trailing":  bin.String() + "\x00",
		"binary version":   string(snapshotMagic) + "\x04" + bin.String()[len(snapshotMagic)+1:],
		"binary disorder":  strings.Replace(bin.String(), "h1", "h3", 1),
		"history disorder": `{"v":2,"sources":{},"hosts":{"h":{"credit":1,"results":1,"days":[[5,1],[4,1]]}},"users":{},"teams":{}}`,
		"history negative": `{"v":2,"sources":{},"hosts":{},"users":{},"teams":{},"project":{"days":[[5,-1]]}}`,
		"history fraction": `{"v":2,"sources":{},"hosts":{"h":{"credit":1,"results":1,"days":[[5.5,1]]}},"users":{},"teams":{}}`,
		"negative credit":  `{"v":1,"sources":{},"hosts":{"h":{"credit":-1,"results":1}},"users":{},"teams":{}}`,
		"null account":     `{"v":1,"sources":{},"hosts":{"h":null},"users":{},"teams":{}}`,
		"trailing data":    good + "{}",
		"empty":            "",
		"no version":       `{"sources":{}}`,
		"negative results": `{"v":1,"sources":{},"hosts":{},"users":{"u":{"credit":1,"results":-2}},"teams":{}}`,
	}
	for name, snap := range bad {
		if err := m.Restore(strings.NewReader(snap)); err == nil {
			t.Errorf("%s snapshot restored", name)
		}
		if m.Through("sched") != 2 {
			t.Fatalf("a refused %s snapshot changed the state", name)
		}
	}
}

// FuzzApply feeds arbitrary records: the machine never panics, a refused
// record changes nothing, and its snapshot always restores to the same bytes.
func FuzzApply(f *testing.F) {
	f.Add(wu.Encode(Delivery{V: 1, Source: "sched", Grants: grants(1, 3)}))
	f.Add(wu.Encode(Delivery{V: 1, Source: "sched", Grants: grants(2, 3)}))
	f.Add([]byte(`{"v":1,"source":"s","grants":[{"id":1,"host":"h","credit":1e308},{"id":2,"host":"h","credit":1e308}]}`))
	f.Add([]byte("{"))
	f.Fuzz(func(t *testing.T, payload []byte) {
		m := New()
		m.Receive(Delivery{V: 1, Source: "sched", Grants: grants(1, 1)})
		var rc Receipt
		if err := json.Unmarshal(m.Apply(fsm.Entry{Seq: 2, Payload: payload}), &rc); err != nil {
			t.Fatalf("receipt: %v", err)
		}
		var snap bytes.Buffer
		if err := m.Snapshot(&snap); err != nil {
			t.Fatal(err)
		}
		r := New()
		if err := r.Restore(bytes.NewReader(snap.Bytes())); err != nil {
			t.Fatalf("own snapshot refused: %v\n%s", err, snap.Bytes())
		}
		var again bytes.Buffer
		_ = r.Snapshot(&again)
		if !bytes.Equal(snap.Bytes(), again.Bytes()) {
			t.Fatal("snapshot differs after a restore")
		}
	})
}

// FuzzRestore feeds arbitrary snapshots: refused, or restored to a state
// whose own snapshot restores again.
func FuzzRestore(f *testing.F) {
	m := New()
	m.Receive(Delivery{V: 1, Source: "sched", Grants: grants(1, 4)})
	var good bytes.Buffer
	_ = m.Snapshot(&good)
	f.Add(good.Bytes())
	old, _ := json.Marshal(m.st)
	f.Add(old)
	f.Add([]byte(`{"v":1}`))
	f.Fuzz(func(t *testing.T, snap []byte) {
		m := New()
		if m.Restore(bytes.NewReader(snap)) != nil {
			return
		}
		var b bytes.Buffer
		if err := m.Snapshot(&b); err != nil {
			t.Fatal(err)
		}
		if err := New().Restore(bytes.NewReader(b.Bytes())); err != nil {
			t.Fatalf("a restored state's snapshot is refused: %v", err)
		}
	})
}

func TestLedgerOfAgreesWithLedger(t *testing.T) {
	m := New()
	deliver(t, m, 1, Delivery{V: 1, Source: "sched", Grants: grants(1, 3)})
	pending := grants(4, 6)
	all := m.Ledger("sched", pending)
	for _, who := range [][3]string{{"h1", "u1", "t1"}, {"h2", "u2", ""}, {"nobody", "", ""}} {
		one := m.LedgerOf("sched", pending, who[0], who[1], who[2])
		if !reflect.DeepEqual(one.Host(who[0]), all.Host(who[0])) || !reflect.DeepEqual(one.User(who[1]), all.User(who[1])) || !reflect.DeepEqual(one.Team(who[2]), all.Team(who[2])) {
			t.Errorf("%v: LedgerOf %+v %+v %+v, Ledger %+v %+v %+v", who, one.Host(who[0]), one.User(who[1]), one.Team(who[2]),
				all.Host(who[0]), all.User(who[1]), all.Team(who[2]))
		}
		if len(one.hosts) > 1 || len(one.users) > 1 || len(one.teams) > 1 {
			t.Errorf("%v: LedgerOf copied more than the accounts asked", who)
		}
	}
}
