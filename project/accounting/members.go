package accounting

import (
	"time"

	"github.com/momonga-project/momonga/project/internal/ordered"
)

// Teams' members (DESIGN §9): each team keeps its users in the order of
// their total credit, kept up to date as grants are applied, as the
// leaderboards are, so that a team's page lists its first members without
// reading every member's credit. A user is a team's member here from the
// first grant that names the team and until one names another team (or
// none): the scheduler names a user's team as it is when it grants. The
// team each user was last credited in is in the snapshot (Members); the
// lists are derived from it, rebuilt on Restore.

// unlist takes user id out of its team's list before its credit changes;
// list puts it back, in the team it now belongs to.
func (m *Machine) unlist(id string) {
	if t, ok := m.st.Members[id]; ok {
		if a := m.st.Users[id]; a != nil {
			m.ix.members[t].Remove(placing{a.Credit, id})
		}
	}
}

func (m *Machine) list(id string) {
	t, ok := m.st.Members[id]
	a := m.st.Users[id]
	if !ok || a == nil {
		return
	}
	l := m.ix.members[t]
	if l == nil {
		l = ordered.New(placeBefore)
		m.ix.members[t] = l
	}
	l.Insert(placing{a.Credit, id})
}

// join records the team a grant credits its user in ("" for none).
func (m *Machine) join(user, team string) {
	if team == "" {
		delete(m.st.Members, user)
		return
	}
	if old, ok := m.st.Members[user]; ok && old == team {
		return
	}
	// One copy of a team's id for all its members: grants each bring
	// their own.
	if s, ok := m.ix.memberOf[team]; ok {
		team = s
	} else {
		m.ix.memberOf[team] = team
	}
	m.st.Members[user] = team
}

// reindexMembers builds the teams' lists from Members.
func (m *Machine) reindexMembers() {
	m.ix.members = map[string]*ordered.List[placing]{}
	m.ix.memberOf = map[string]string{}
	for u, t := range m.st.Members {
		if s, ok := m.ix.memberOf[t]; ok {
			m.st.Members[u] = s
		} else {
			m.ix.memberOf[t] = t
		}
		m.list(u)
	}
}

// TeamMembers returns up to limit of the users last credited in team, by
// total credit (ties by id), from position offset (0 is the first), and
// how many there are.
func (m *Machine) TeamMembers(team string, offset, limit int, now time.Time) ([]Standing, int) {
	l := m.ix.members[team]
	if l == nil {
		return nil, 0
	}
	ps := l.Slice(nil, offset, limit)
	out := make([]Standing, len(ps))
	for i, p := range ps {
		out[i] = standing(p.id, m.st.Users[p.id], now)
	}
	return out, l.Len()
}
