package sched

import (
	wu "github.com/momonga-project/momonga/workunits"
)

// Status summarises the state for `momonga-project status` and the stats
// page. Lists are sorted so that every member gives the same answer.
func (m *Machine) Status() wu.StatusReply {
	rep := wu.StatusReply{V: wu.WireVersion, Project: m.cfg.Project, Now: m.st.Now}
	for _, name := range sortedKeys(m.st.Apps) {
		rep.Apps = append(rep.Apps, m.st.Apps[name])
	}
	for _, name := range sortedKeys(m.st.Batches) {
		b := m.st.Batches[name]
		bs := wu.BatchStatus{Name: b.Name, App: b.App, Units: len(b.Units), Pending: b.Pending, Valid: b.Valid, Errored: b.Errored,
			Tasks: map[wu.TaskState]int{}}
		for _, uid := range b.Units {
			for _, tid := range m.st.Units[uid].Tasks {
				bs.Tasks[m.st.Tasks[tid].State]++
			}
		}
		rep.Batches = append(rep.Batches, bs)
	}
	running := map[string]int{}
	for tid := range m.st.Assigned {
		running[m.st.Tasks[tid].Host]++
	}
	for _, id := range sortedKeys(m.st.Hosts) {
		h := m.st.Hosts[id]
		rep.Hosts = append(rep.Hosts, wu.HostStatus{ID: h.ID, Info: h.Info, LastSeen: h.LastSeen, Running: running[id],
			Valid: h.Valid, Invalid: h.Invalid, Lost: h.Lost, Credit: h.Credit})
	}
	return rep
}

// Results lists a page of a batch's work units with their canonical results.
func (m *Machine) Results(q wu.ResultsQuery) (wu.ResultsReply, error) {
	b := m.st.Batches[q.Batch]
	if b == nil {
		return wu.ResultsReply{}, wu.Errorf(wu.CodeNotFound, "no batch named %q", q.Batch)
	}
	rep := wu.ResultsReply{V: wu.WireVersion, Batch: b.Name, App: b.App, Total: len(b.Units)}
	from := min(q.Offset, len(b.Units))
	to := min(from+wu.ResultsPage, len(b.Units))
	if to < len(b.Units) {
		rep.Next = to
	}
	for _, uid := range b.Units[from:to] {
		u := m.st.Units[uid]
		rep.Units = append(rep.Units, wu.UnitResult{ID: u.ID, Name: u.Name, State: u.State, Output: u.Canonical,
			OutputSize: u.OutputSize, Tasks: len(u.Tasks), Reason: u.Reason})
	}
	return rep, nil
}
