package sched

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"

	"github.com/momonga-project/momonga/project/accounting"
	"github.com/momonga-project/momonga/project/credit"
	"github.com/momonga-project/momonga/project/internal/snapcodec"
	wu "github.com/momonga-project/momonga/workunits"
)

// ack appends the acknowledgement the lease holder sends once the
// accounting peer has applied every output up to through.
func (h *harness) ack(through uint64) *wu.Error {
	raw := h.apply(wu.Command{V: 1, Op: OpOutputsAcked, Body: wu.Encode(OutputsAcked{V: 1, Through: through})})
	var a wu.Ack
	if err := json.Unmarshal(raw, &a); err != nil {
		h.t.Fatal(err)
	}
	return a.Error
}

func TestGrantsGoToTheOutboxInOrderAndAcksTrimIt(t *testing.T) {
	h := newHarness(t)
	h.must(h.req("adm:test", wu.OpTeamAdd, wu.TeamAdd{V: 1, Name: "t"}, nil))
	h.addUser("ann", "t")
	h.addUser("bob", "")
	a, b := h.attachHost("ann", 1), h.attachHost("bob", 2)
	h.addApp("app", wu.Policy{Replication: 2, Quorum: 2})
	h.submitUnits("app", "b", 3, 4.32e12)
	for range 3 {
		ta, tb := h.work(a, 1), h.work(b, 1)
		h.must(h.reportCPU(a, ta[0].Task, "r", 100))
		h.must(h.reportCPU(b, tb[0].Task, "r", 100))
	}
	out := h.m.Outbox(0)
	if len(out) != 6 || h.m.LastOutput() != 6 {
		t.Fatalf("outbox %d grants, last output %d; want 6 and 6", len(out), h.m.LastOutput())
	}
	var annTeam, bobTeam string
	for i, g := range out {
		if g.ID != uint64(i+1) || g.Credit <= 0 || g.Task == "" || g.At != h.now || g.Sent.IsZero() {
			t.Fatalf("grant %d: %+v", i, g)
		}
		switch g.Host {
		case a:
			annTeam = g.Team
		case b:
			bobTeam = g.Team
		}
	}
	if annTeam == "" || bobTeam != "" {
		t.Fatalf("grants name team %q for ann's host and %q for bob's (no team)", annTeam, bobTeam)
	}
	if len(h.m.Outbox(4)) != 4 {
		t.Fatal("Outbox(4) is not the first 4 grants")
	}

	if e := h.ack(7); e == nil || e.Code != wu.CodeConflict {
		t.Fatalf("ack of an output never made: %v", e)
	}
	h.must(h.ack(4))
	if out := h.m.Outbox(0); len(out) != 2 || out[0].ID != 5 {
		t.Fatalf("after ack 4, outbox %+v", out)
	}
	h.must(h.ack(2)) // late and repeated acks change nothing
	h.must(h.ack(4))
	if len(h.m.Outbox(0)) != 2 {
		t.Fatal("an older ack changed the outbox")
	}
	// The outbox and the numbering survive a snapshot.
	r := New(Config{})
	if err := r.Restore(bytes.NewReader(h.snapshot())); err != nil {
		t.Fatal(err)
	}
	if got := r.Outbox(0); len(got) != 2 || got[1].ID != 6 || r.LastOutput() != 6 {
		t.Fatalf("restored outbox %+v, last %d", got, r.LastOutput())
	}
	h.must(h.ack(6))
	if len(h.m.Outbox(0)) != 0 || h.m.LastOutput() != 6 {
		t.Fatal("ack 6 left outputs behind")
	}
}

func TestRestoreRefusesAnOutboxWithAGap(t *testing.T) {
	h := newHarness(t)
	h.setup(1, 1, 1)
	h.hello("a")
	as := h.work("a", 1)
	h.must(h.report("a", as[0].Task, "x"))
	h.m.st.Outbox = append(h.m.st.Outbox, accounting.Grant{ID: 9, Host: "a"})
	h.m.st.NextOutput = 9
	err := New(Config{}).Restore(bytes.NewReader(h.snapshot()))
	if err == nil || !strings.Contains(err.Error(), "outbox") {
		t.Fatalf("restore of an outbox 1, 9: %v", err)
	}
}

// legacySnapshot turns a snapshot of h into the version-2 layout, where
// the scheduler kept credit itself: the same, with credit and recent average
// in the JSON tables of hosts, users and teams.
func legacySnapshot(t *testing.T, h *harness, credits map[string]map[string]legacyAccount) []byte {
	t.Helper()
	var buf bytes.Buffer
	// Version 3 differs from 2 in the JSON tables only.
	if err := h.m.snapshotVersion(&buf, outboxVersion); err != nil {
		t.Fatal(err)
	}
	b := buf.Bytes()
	d := &decoder{Decoder: snapcodec.Decoder{B: b, Off: len(snapshotMagic)}}
	d.Uint()
	d.time()
	d.Uint()
	d.Count()
	d.Count()
	d.Count()
	start := d.Off
	small := d.bytes()
	end := d.Off
	if d.Err != nil {
		t.Fatal(d.Err)
	}
	var tb map[string]any
	if err := json.Unmarshal(small, &tb); err != nil {
		t.Fatal(err)
	}
	for table, accounts := range credits {
		for id, a := range accounts {
			rec := tb[table].(map[string]any)[id].(map[string]any)
			rec["credit"], rec["rac"] = a.Credit, a.RAC
		}
	}
	delete(tb, "outbox") // a version-2 scheduler had none
	delete(tb, "next_output")
	small, _ = json.Marshal(tb)
	e := &encoder{}
	e.B = append(e.B, snapshotMagic...)
	e.Uint(legacyCreditVersion)
	e.B = append(e.B, b[len(snapshotMagic)+1:start]...)
	e.Uint(uint64(len(small)))
	e.B = append(e.B, small...)
	return append(e.B, b[end:]...)
}

func TestRestoreCarriesVersion2CreditOver(t *testing.T) {
	h := newHarness(t)
	h.must(h.req("adm:test", wu.OpTeamAdd, wu.TeamAdd{V: 1, Name: "t"}, nil))
	h.addUser("ann", "t")
	a := h.attachHost("ann", 1)
	h.hello("b")
	h.addApp("app", wu.Policy{Replication: 1, Quorum: 1})
	h.submitUnits("app", "b", 1, 0)
	ta := h.work(a, 1)
	h.must(h.reportCPU(a, ta[0].Task, "r", 100))
	st := h.m.Status()
	user, team := st.Users[0].ID, st.Teams[0].ID
	rac := credit.Average{Avg: 3, Time: h.now}
	snap := legacySnapshot(t, h, map[string]map[string]legacyAccount{
		"hosts": {a: {Credit: 12, RAC: rac}, "b": {}},
		"users": {user: {Credit: 12, RAC: rac}},
		"teams": {team: {Credit: 20, RAC: rac}},
	})
	r := New(Config{})
	if err := r.Restore(bytes.NewReader(snap)); err != nil {
		t.Fatal(err)
	}
	out := r.Outbox(0)
	if len(out) != 3 || r.LastOutput() != 3 || out[0].ID != 1 {
		t.Fatalf("opening balances %+v, last output %d; want one each for the host, user and team with credit, from 1", out, r.LastOutput())
	}
	acct := accounting.New()
	if rc := acct.Receive(accounting.Delivery{V: 1, Source: "sched", Grants: out}); rc.Error != nil {
		t.Fatal(rc.Error)
	}
	l := acct.Ledger("sched", nil)
	if got := l.Host(a); got.Credit != 12 || got.RAC != rac || got.Results != 1 {
		t.Errorf("host: %+v", got)
	}
	if got := l.User(user); got.Credit != 12 || got.Results != 1 {
		t.Errorf("user: %+v", got)
	}
	if got := l.Team(team); got.Credit != 20 || got.RAC != rac {
		t.Errorf("team: %+v", got)
	}
	// The restored scheduler writes the current version, which restores
	// to the same state, balances still in the outbox.
	var cur bytes.Buffer
	if err := r.Snapshot(&cur); err != nil {
		t.Fatal(err)
	}
	again := New(Config{})
	if err := again.Restore(bytes.NewReader(cur.Bytes())); err != nil || len(again.Outbox(0)) != 3 {
		t.Fatalf("restore of the migrated state: %v, outbox %d", err, len(again.Outbox(0)))
	}
}
