package sched

import (
	"time"

	wu "github.com/momonga-project/momonga/workunits"
)

// Status summarises the state for `momonga-project status` and the stats
// page. Lists are sorted so that every member gives the same answer. Credit
// is not the scheduler's: the accounting peer fills it in
// (accounting.Ledger.Fill).
func (m *Machine) Status() wu.StatusReply {
	rep := wu.StatusReply{V: wu.WireVersion, Project: m.cfg.Project, Now: m.st.Now}
	for _, name := range sortedKeys(m.st.Apps) {
		rep.Apps = append(rep.Apps, m.st.Apps[name])
	}
	for _, name := range sortedKeys(m.st.Batches) {
		b := m.st.Batches[name]
		bs := wu.BatchStatus{Name: b.Name, App: b.App, Units: len(b.Units), Pending: b.Pending, Valid: b.Valid, Errored: b.Errored,
			Cancelled: b.Cancelled, Tasks: map[wu.TaskState]int{}}
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
		hs := wu.HostStatus{ID: h.ID, Info: h.Info.wire(), LastSeen: h.LastSeen, Running: running[id],
			Valid: int(h.Valid), Invalid: int(h.Invalid), Lost: int(h.Lost), Streak: int(h.Streak), Revoked: h.Revoked,
			Speed: m.speed(h), DCF: h.DCF, Turnaround: h.Turnaround}
		if h.bucket > 0 {
			hs.Class = m.ix.hosts.hostClass(int(h.bucket - 1))
		}
		if h.Server != 0 {
			hs.Server = m.st.Servers[h.Server-1]
		}
		if u := m.st.Users[h.User]; u != nil {
			hs.User = u.Name
		}
		rep.Hosts = append(rep.Hosts, hs)
	}
	rep.Users, rep.Teams = m.accounts(false)
	return rep
}

// Now is the time of the newest tick applied.
func (m *Machine) Now() time.Time { return m.st.Now }

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
			OutputSize: u.OutputSize, Tasks: len(u.Tasks), Reason: u.Reason, SharedWith: u.SharedWith})
	}
	return rep, nil
}

// Accounts lists users, with their e-mail addresses, and teams, for the
// project's own tools.
func (m *Machine) Accounts() wu.AccountsReply {
	rep := wu.AccountsReply{V: wu.WireVersion}
	rep.Users, rep.Teams = m.accounts(true)
	return rep
}

// accounts lists users and teams, without their credit (the accounting
// peer's); e-mail addresses only when asked, as the stats page must not show
// them.
func (m *Machine) accounts(withEmail bool) ([]wu.UserStatus, []wu.TeamStatus) {
	hosts := map[string]int{}
	for _, h := range m.st.Hosts {
		if h.User != "" && !h.Revoked {
			hosts[h.User]++
		}
	}
	members := map[string]int{}
	users := make([]wu.UserStatus, 0, len(m.st.Users))
	for _, id := range sortedKeys(m.st.Users) {
		u := m.st.Users[id]
		us := wu.UserStatus{ID: u.ID, Name: u.Name, Created: u.Created, Hosts: hosts[id]}
		if withEmail {
			us.Email = u.Email
		}
		if t := m.st.Teams[u.Team]; t != nil {
			us.Team = t.Name
			members[t.ID]++
		}
		users = append(users, us)
	}
	teams := make([]wu.TeamStatus, 0, len(m.st.Teams))
	for _, id := range sortedKeys(m.st.Teams) {
		t := m.st.Teams[id]
		ts := wu.TeamStatus{ID: t.ID, Name: t.Name, Created: t.Created, Members: members[id]}
		if f := m.st.Users[t.Founder]; f != nil {
			ts.Founder = f.Name
		}
		teams = append(teams, ts)
	}
	return users, teams
}
