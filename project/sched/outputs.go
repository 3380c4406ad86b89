package sched

import (
	"fmt"

	"github.com/momonga-project/momonga/project/accounting"
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
