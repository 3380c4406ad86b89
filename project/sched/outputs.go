package sched

import (
	"encoding/json"
	"fmt"

	"github.com/momonga-project/momonga/project/accounting"
	"github.com/momonga-project/momonga/project/credit"
	wu "github.com/momonga-project/momonga/workunits"
)

// Outputs for the accounting virtual peer (DESIGN §5, "virtual peer ↔
// virtual peer"). The scheduler keeps no credit: each grant becomes an
// output with the next number, held in the outbox of the replicated state
// until the accounting peer has applied it. The lease holder delivers the
// outbox and then appends OpOutputsAcked with how far the accounting peer
// got, which trims the outbox on every member alike. Grants that are
// delivered twice are ignored by the accounting peer, so a delivery cut
// short, or repeated by a new lease holder, is harmless.

// OutputSource names the scheduler's outputs in the accounting peer's
// de-duplication table (accounting.Delivery.Source).
const OutputSource = "sched"

// OpOutputsAcked is appended by the project itself: the accounting peer has
// applied every output up to OutputsAcked.Through.
const OpOutputsAcked = "outputs.acked"

// OutputsAcked is the body of OpOutputsAcked.
type OutputsAcked struct {
	V       int    `json:"v"`
	Through uint64 `json:"through"`
}

func (a *OutputsAcked) Validate() error {
	if a.Through == 0 {
		return wu.Errorf(wu.CodeBadRequest, "an acknowledgement of outputs needs the id of the last one applied")
	}
	return nil
}

// grant puts credit g for task t of host h in the outbox.
func (m *Machine) grant(t *task, h *host, g float64) {
	m.st.NextOutput++
	out := accounting.Grant{ID: m.st.NextOutput, Task: t.ID, Host: h.ID, User: h.User, Credit: min(g, accounting.MaxGrant), Sent: t.Sent, At: m.st.Now}
	if u := m.st.Users[h.User]; u != nil && m.st.Teams[u.Team] != nil {
		out.Team = u.Team
	}
	m.st.Outbox = append(m.st.Outbox, out)
	m.emit(CreditGranted{out.ID})
}

// outputsAcked trims the outbox up to the acknowledged output.
func (m *Machine) outputsAcked(_ string, req OutputsAcked) (*wu.Ack, error) {
	if req.Through > m.st.NextOutput {
		return nil, wu.Errorf(wu.CodeConflict, "output %d is acknowledged, but the last output made is %d", req.Through, m.st.NextOutput)
	}
	i := 0
	for i < len(m.st.Outbox) && m.st.Outbox[i].ID <= req.Through {
		i++
	}
	// A copy, so that the trimmed grants do not stay reachable behind the
	// slice.
	m.st.Outbox = append([]accounting.Grant(nil), m.st.Outbox[i:]...)
	return &wu.Ack{V: wu.WireVersion}, nil
}

// Outbox returns up to limit outputs not yet acknowledged, oldest first
// (all of them for limit ≤ 0).
func (m *Machine) Outbox(limit int) []accounting.Grant {
	n := len(m.st.Outbox)
	if limit > 0 {
		n = min(n, limit)
	}
	return append([]accounting.Grant(nil), m.st.Outbox[:n]...)
}

// LastOutput is the id of the last output made (0 for none).
func (m *Machine) LastOutput() uint64 { return m.st.NextOutput }

// checkOutbox checks a restored outbox: consecutive ids ending at the last
// output made.
func checkOutbox(out []accounting.Grant, last uint64) error {
	for i, g := range out {
		if want := last - uint64(len(out)-1-i); g.ID != want {
			return fmt.Errorf("output %d where %d belongs (the last output made is %d)", g.ID, want, last)
		}
	}
	return nil
}

// legacyAccount is credit as a version-2 snapshot kept it, in the host,
// user and team tables.
type legacyAccount struct {
	Credit float64        `json:"credit"`
	RAC    credit.Average `json:"rac"`
	Valid  int            `json:"valid"` // hosts only
}

// openingBalances carries the credit of a version-2 snapshot (tables, its
// JSON section) over to the accounting peer: one opening balance per host,
// user and team with credit, in the outbox before any new grant. Every
// member restoring the same snapshot makes the same balances.
func openingBalances(tables []byte, st *state) error {
	var legacy struct {
		Hosts map[string]legacyAccount `json:"hosts"`
		Users map[string]legacyAccount `json:"users"`
		Teams map[string]legacyAccount `json:"teams"`
	}
	if err := json.Unmarshal(tables, &legacy); err != nil {
		return err
	}
	valid := map[string]int{} // results of each user's hosts
	for _, h := range st.Hosts {
		valid[h.User] += int(h.Valid)
	}
	for _, t := range []struct {
		accounts map[string]legacyAccount
		grant    func(id string, a legacyAccount) accounting.Grant
	}{
		{legacy.Hosts, func(id string, a legacyAccount) accounting.Grant {
			return accounting.Grant{Host: id, Results: a.Valid}
		}},
		{legacy.Users, func(id string, a legacyAccount) accounting.Grant {
			return accounting.Grant{User: id, Results: valid[id]}
		}},
		// Which results a team's credit came from depends on when its
		// members joined it: that is not in the snapshot.
		{legacy.Teams, func(id string, a legacyAccount) accounting.Grant { return accounting.Grant{Team: id} }},
	} {
		for _, id := range sortedKeys(t.accounts) {
			a := t.accounts[id]
			if !(a.Credit > 0 || a.RAC.Avg > 0) || id == "" {
				continue
			}
			g := t.grant(id, a)
			st.NextOutput++
			g.ID, g.Opening = st.NextOutput, true
			g.Credit = min(max(a.Credit, 0), accounting.MaxGrant)
			g.RAC = credit.Average{Avg: min(max(a.RAC.Avg, 0), accounting.MaxGrant), Time: a.RAC.Time}
			g.Results = max(g.Results, 0)
			st.Outbox = append(st.Outbox, g)
		}
	}
	return nil
}
