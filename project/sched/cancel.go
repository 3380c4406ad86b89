package sched

import (
	wu "github.com/momonga-project/momonga/workunits"
)

// cancel stops the pending work units of a batch, or the ones named: their
// unsent tasks are dropped, their running ones are aborted at the host's
// next heartbeat (it no longer holds them), and they show as cancelled.
// Units already decided stay as they are, and so does the credit granted
// for them. A unit that others wait for passes its computation on to the
// first of them (share.go).
func (m *Machine) cancel(_ string, req wu.Cancel) (*wu.CancelReply, error) {
	b := m.st.Batches[req.Batch]
	if b == nil {
		return nil, wu.Errorf(wu.CodeNotFound, "no batch named %q", req.Batch)
	}
	ids := b.Units
	if len(req.Units) > 0 {
		byName := make(map[string]string, len(b.Units))
		for i, n := range b.Names {
			byName[n] = b.Units[i]
		}
		ids = make([]string, 0, len(req.Units))
		for _, n := range req.Units {
			id, ok := byName[n]
			if !ok {
				return nil, wu.Errorf(wu.CodeNotFound, "batch %q has no work unit named %q: `momonga-project results %s` lists them", req.Batch, n, req.Batch)
			}
			ids = append(ids, id)
		}
	}
	n := 0
	// Units waiting for another's result first, so that none of them is
	// made to compute in the place of a unit cancelled with it.
	for _, waiting := range []bool{true, false} {
		for _, id := range ids {
			u := m.st.Units[id]
			if u.State != wu.WorkUnitPending || (u.SharedWith != "") != waiting {
				continue
			}
			m.unfollow(u)
			m.finish(u, wu.WorkUnitCancelled, "cancelled by the project")
			n++
		}
	}
	return &wu.CancelReply{V: wu.WireVersion, Cancelled: n}, nil
}
