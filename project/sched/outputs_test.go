package sched

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"

	"github.com/momonga-project/momonga/project/accounting"
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
