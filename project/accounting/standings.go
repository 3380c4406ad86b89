package accounting

import (
	"math"
	"slices"
	"time"

	"github.com/momonga-project/momonga/project/credit"
	"github.com/momonga-project/momonga/project/internal/ordered"
)

// Standings (DESIGN §9): the leaderboards of hosts, users and teams by
// total credit and by recent average credit, kept up to date as grants are
// applied, so that a rank or a page of a leaderboard is a lookup, never a
// sort of every account. They are derived from the accounts: not in the
// snapshot, rebuilt on Restore.
//
// A recent average decays with time, but all of them at the same rate, so
// their order does not change while no credit comes: the average a at time
// t is a·2^(-(now-t)/halflife), whose logarithm is ln a + t·ln2/halflife
// less the same term for everyone. That sum is the key the order by RAC is
// kept on.

// Kind names a table of accounts.
type Kind int

const (
	Hosts Kind = iota
	Users
	Teams
	kinds
)

func (k Kind) String() string {
	switch k {
	case Hosts:
		return "hosts"
	case Users:
		return "users"
	case Teams:
		return "teams"
	}
	return "unknown"
}

// Order is what a leaderboard is sorted by.
type Order int

const (
	ByCredit Order = iota // total credit
	ByRAC                 // recent average credit
	orders
)

// placing is one account's place in a leaderboard: highest key first, ties
// by id.
type placing struct {
	key float64
	id  string
}

func placeBefore(a, b placing) bool {
	return a.key > b.key || a.key == b.key && a.id < b.id
}

func racKey(r credit.Average) float64 {
	if r.Time.IsZero() || !(r.Avg > 0) {
		return math.Inf(-1)
	}
	return math.Log(r.Avg) + float64(r.Time.UnixNano())/1e9*math.Ln2/credit.HalfLife.Seconds()
}

func keyOf(a *Account, o Order) float64 {
	if o == ByRAC {
		return racKey(a.RAC)
	}
	return a.Credit
}

// index is what the machine derives from its accounts: the leaderboards,
// and how many accounts of each kind were last credited on each day (the
// active ones over a week are a sum of seven of those).
type index struct {
	boards [kinds][orders]*ordered.List[placing]
	last   [kinds]map[int32]int
	// members lists each team's users by credit (members.go); memberOf
	// holds one copy of each team's id.
	members  map[string]*ordered.List[placing]
	memberOf map[string]string
}

func (m *Machine) table(k Kind) map[string]*Account {
	switch k {
	case Hosts:
		return m.st.Hosts
	case Users:
		return m.st.Users
	}
	return m.st.Teams
}

// reindex builds the index from the accounts.
func (m *Machine) reindex() {
	for k := range kinds {
		t := m.table(k)
		m.ix.last[k] = map[int32]int{}
		for o := range orders {
			ps := make([]placing, 0, len(t))
			for id, a := range t {
				ps = append(ps, placing{keyOf(a, o), id})
			}
			m.ix.boards[k][o] = ordered.Build(placeBefore, ps)
		}
		for _, a := range t {
			if !a.RAC.Time.IsZero() {
				m.ix.last[k][Day(a.RAC.Time)]++
			}
		}
	}
	m.reindexMembers()
}

// unplace takes an account out of its kind's index before it changes;
// place puts it back after.
func (m *Machine) unplace(k Kind, id string, a *Account) {
	for o := range orders {
		m.ix.boards[k][o].Remove(placing{keyOf(a, o), id})
	}
	if !a.RAC.Time.IsZero() {
		d := Day(a.RAC.Time)
		if m.ix.last[k][d]--; m.ix.last[k][d] == 0 {
			delete(m.ix.last[k], d)
		}
	}
}

func (m *Machine) place(k Kind, id string, a *Account) {
	for o := range orders {
		m.ix.boards[k][o].Insert(placing{keyOf(a, o), id})
	}
	if !a.RAC.Time.IsZero() {
		m.ix.last[k][Day(a.RAC.Time)]++
	}
}

// Standing is an account with its ranks and its history, as of Time.
type Standing struct {
	ID         string   `json:"id"`
	Credit     float64  `json:"credit"`
	RAC        float64  `json:"rac"` // decayed to Time
	Results    int      `json:"results"`
	CreditRank int      `json:"credit_rank,omitempty"` // from 1; 0 for an account never credited
	RACRank    int      `json:"rac_rank,omitempty"`
	LastCredit int64    `json:"last_credit,omitempty"` // Unix time of the newest grant
	Days       []Bucket `json:"-"`
	Months     []Bucket `json:"-"`
}

func standing(id string, a *Account, now time.Time) Standing {
	s := Standing{ID: id, Credit: a.Credit, RAC: a.RAC.At(now), Results: a.Results}
	if !a.RAC.Time.IsZero() {
		s.LastCredit = a.RAC.Time.Unix()
	}
	return s
}

// Count is how many accounts of kind k there are: every host, user and
// team ever credited.
func (m *Machine) Count(k Kind) int { return len(m.table(k)) }

// Board returns up to limit accounts of kind k in the order o from
// position offset (0 is the first), with their ranks, averages decayed to
// now.
func (m *Machine) Board(k Kind, o Order, offset, limit int, now time.Time) []Standing {
	ps := m.ix.boards[k][o].Slice(nil, offset, limit)
	t := m.table(k)
	out := make([]Standing, len(ps))
	for i, p := range ps {
		out[i] = standing(p.id, t[p.id], now)
		if o == ByCredit {
			out[i].CreditRank = offset + i + 1
		} else {
			out[i].RACRank = offset + i + 1
		}
	}
	return out
}

// Standing returns one account with both its ranks and its history; ok is
// false for an id never credited.
func (m *Machine) Standing(k Kind, id string, now time.Time) (s Standing, ok bool) {
	a := m.table(k)[id]
	if a == nil {
		return Standing{ID: id}, false
	}
	s = standing(id, a, now)
	s.CreditRank, _ = m.ix.boards[k][ByCredit].Rank(placing{keyOf(a, ByCredit), id})
	s.RACRank, _ = m.ix.boards[k][ByRAC].Rank(placing{keyOf(a, ByRAC), id})
	s.Days, s.Months = clone(a.Days), clone(a.Months)
	return s, true
}

// Top returns the standings (without ranks or history) of at most limit
// of the accounts with these ids, those with the most credit first, ties
// by id: a team's members. It reads each id once and sorts only what it
// keeps.
func (m *Machine) Top(k Kind, ids []string, limit int, now time.Time) []Standing {
	t := m.table(k)
	top := make([]placing, 0, min(limit, len(ids))+1)
	for _, id := range ids {
		a := t[id]
		if a == nil {
			a = &Account{}
		}
		p := placing{a.Credit, id}
		if len(top) == limit && !placeBefore(p, top[len(top)-1]) {
			continue
		}
		i, _ := slices.BinarySearchFunc(top, p, func(x, y placing) int {
			if placeBefore(x, y) {
				return -1
			}
			return 1
		})
		top = slices.Insert(top, i, p)
		if len(top) > limit {
			top = top[:limit]
		}
	}
	out := make([]Standing, len(top))
	for i, p := range top {
		if a := t[p.id]; a != nil {
			out[i] = standing(p.id, a, now)
		} else {
			out[i] = Standing{ID: p.id}
		}
	}
	return out
}

// Active counts the accounts of kind k credited in the days days up to
// now's.
func (m *Machine) Active(k Kind, now time.Time, days int) int {
	n, today := 0, Day(now)
	for d := today - int32(days) + 1; d <= today; d++ {
		n += m.ix.last[k][d]
	}
	return n
}

// History returns the project's credit by hour, day and month.
func (m *Machine) History() Totals { return m.st.Project.clone() }

// Credit is an account's total credit and recent average (zero for an id
// never credited): what the exports write of it (BOINC's expavg_credit as
// of expavg_time), read for each of a million hosts without copying
// anything else.
func (m *Machine) Credit(k Kind, id string) (float64, credit.Average) {
	if a := m.table(k)[id]; a != nil {
		return a.Credit, a.RAC
	}
	return 0, credit.Average{}
}
