package sched

import (
	"crypto/md5"
	"crypto/sha256"
	"encoding/hex"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/momonga-project/momonga/project/internal/ordered"
	wu "github.com/momonga-project/momonga/workunits"
)

// What the stats site asks of the scheduler (DESIGN §9): the description
// of hosts, users and teams, the progress of batches and counts of the
// whole. Credit is the accounting peer's; pages join the two (project/reads).
//
// Every host, user and team has a number from 1 (Num), the integer id
// BOINC's exports and the site's addresses use. Batches remember when they
// were submitted and how many units were finished each hour, hosts their
// last results and how long they take to return them. A page asks for one
// thing, by number or name: the indexes below find it without walking every
// host or user.

// RecentResults is how many results a host remembers.
const RecentResults = 10

// ProgressHours is how many hours of a batch's progress are kept.
const ProgressHours = 24 * 14

// progress is how a batch advanced.
type progress struct {
	Created time.Time `json:"created"`
	// Hours counts the units finished (valid or in error) in each hour
	// with any, oldest first, numbered from the Unix epoch.
	Hours []hourCount `json:"hours,omitempty"`
}

type hourCount struct {
	Hour  int32 `json:"h"`
	Units int   `json:"n"`
}

// counters count what happened since the scheduler began, for rates.
type counters struct {
	Assigned uint64 `json:"assigned,omitempty"` // tasks given to hosts
	Reported uint64 `json:"reported,omitempty"` // results reported
}

// statsIndex is derived from the state: rebuilt on Restore, kept up to date
// by the operations that change what it indexes.
type statsIndex struct {
	// Hosts by pointer rather than by id: 8 bytes less a host in each.
	hostNum          []*host            // number-1 → host
	userNum, teamNum []string           // number-1 → id
	userHosts        map[string][]*host // user id → its hosts not revoked, oldest first
	members          map[string]map[string]bool
	// holding lists the tasks given to each host; some have since been
	// taken away or reported, and are dropped when the list has doubled
	// since it was last pruned (a host that never reports costs no more
	// per assignment than one that does).
	holding map[string]*holdings
	tasks   map[wu.TaskState]int
	names   [2]*ordered.List[nameEntry] // users, teams
}

// holdings is a host's entry in statsIndex.holding: ids may repeat (a task
// taken away and given back) or be stale until the next prune.
type holdings struct {
	ids    []string
	pruned int // len(ids) after the last prune
}

// prune keeps the ids of the tasks h holds now, each once, in order.
func (l *holdings) prune(st *state, host string) {
	seen := make(map[string]bool, len(l.ids))
	kept := l.ids[:0]
	for _, tid := range l.ids {
		if t := st.Tasks[tid]; t != nil && t.State == wu.TaskAssigned && t.Host == host && !seen[tid] {
			seen[tid] = true
			kept = append(kept, tid)
		}
	}
	clear(l.ids[len(kept):])
	l.ids, l.pruned = kept, len(kept)
}

// nameEntry orders names for search: case folded, then as written.
type nameEntry struct{ folded, id string }

func nameBefore(a, b nameEntry) bool {
	return a.folded < b.folded || a.folded == b.folded && a.id < b.id
}

func (m *Machine) reindexStats() {
	st := m.st
	ix := &m.six
	m.platforms = map[platform]*platform{}
	for _, h := range st.Hosts {
		h.Info = m.compact(h.Info.wire())
	}
	*ix = statsIndex{userHosts: map[string][]*host{}, members: map[string]map[string]bool{}, holding: map[string]*holdings{}, tasks: map[wu.TaskState]int{}}
	// Numbers for what a snapshot from before them holds: users and teams
	// keep the number in their id, hosts are numbered after the others in
	// the order they came.
	for id, u := range st.Users {
		if u.Num == 0 {
			u.Num = numberIn(id, "u")
		}
		if u.XProject == "" {
			u.XProject = derivedCrossProjectID(u.KeyHash)
		}
	}
	for id, t := range st.Teams {
		if t.Num == 0 {
			t.Num = numberIn(id, "t")
		}
	}
	var unnumbered []*host
	for _, h := range st.Hosts {
		if h.Num == 0 {
			unnumbered = append(unnumbered, h)
		}
		st.HostNums = max(st.HostNums, h.Num)
	}
	slices.SortFunc(unnumbered, func(a, b *host) int {
		if c := a.Created.Compare(b.Created); c != 0 {
			return c
		}
		return strings.Compare(a.ID, b.ID)
	})
	for _, h := range unnumbered {
		st.HostNums++
		h.Num = st.HostNums
	}
	st.NextUser = max(st.NextUser, maxNum(st.Users))
	st.NextTeam = max(st.NextTeam, maxNum(st.Teams))

	ix.hostNum = make([]*host, st.HostNums)
	ix.userNum = make([]string, st.NextUser)
	ix.teamNum = make([]string, st.NextTeam)
	var userNames, teamNames []nameEntry
	for id, t := range st.Teams {
		ix.teamNum[t.Num-1] = id
		teamNames = append(teamNames, nameEntry{fold(t.Name), id})
	}
	for id, u := range st.Users {
		ix.userNum[u.Num-1] = id
		userNames = append(userNames, nameEntry{fold(u.Name), id})
		if u.Team != "" {
			m.addMember(u.Team, id)
		}
	}
	ix.names = [2]*ordered.List[nameEntry]{ordered.Build(nameBefore, userNames), ordered.Build(nameBefore, teamNames)}
	for _, h := range st.Hosts {
		ix.hostNum[h.Num-1] = h
	}
	for _, h := range ix.hostNum {
		if h != nil && h.User != "" && !h.Revoked {
			ix.userHosts[h.User] = append(ix.userHosts[h.User], h)
		}
	}
	for tid := range st.Assigned {
		t := st.Tasks[tid]
		l := ix.holding[t.Host]
		if l == nil {
			l = &holdings{}
			ix.holding[t.Host] = l
		}
		l.ids = append(l.ids, tid)
	}
	for _, l := range ix.holding {
		slices.Sort(l.ids)
		l.pruned = len(l.ids)
	}
	for _, t := range st.Tasks {
		ix.tasks[t.State]++
	}
}

type numbered interface{ number() uint64 }

func (u *user) number() uint64 { return u.Num }
func (t *team) number() uint64 { return t.Num }

func maxNum[T numbered](table map[string]T) uint64 {
	n := uint64(0)
	for _, v := range table {
		n = max(n, v.number())
	}
	return n
}

// numberIn reads the number in an id such as "u12"; 0 when there is none.
func numberIn(id, prefix string) uint64 {
	n, err := strconv.ParseUint(strings.TrimPrefix(id, prefix), 10, 64)
	if err != nil || !strings.HasPrefix(id, prefix) {
		return 0
	}
	return n
}

func fold(name string) string { return strings.ToLower(name) }

// derivedCrossProjectID is the cross-project id of a user made without one
// (by an older tool, or before there were any): secret, since the key hash
// is, and the same on every member.
func derivedCrossProjectID(k wu.Hash) string {
	sum := sha256.Sum256([]byte("momonga cross-project id\x00" + string(k)))
	return hex.EncodeToString(sum[:16])
}

// numberHost gives a new host its number and indexes it.
func (m *Machine) numberHost(h *host) {
	m.st.HostNums++
	h.Num = m.st.HostNums
	m.six.hostNum = append(m.six.hostNum, h)
	if h.User != "" {
		m.six.userHosts[h.User] = append(m.six.userHosts[h.User], h)
	}
}

// indexUser and indexTeam index a new user or team.
func (m *Machine) indexUser(u *user) {
	m.six.userNum = append(m.six.userNum, make([]string, int(u.Num)-len(m.six.userNum))...)
	m.six.userNum[u.Num-1] = u.ID
	m.six.names[0].Insert(nameEntry{fold(u.Name), u.ID})
}

func (m *Machine) indexTeam(t *team) {
	m.six.teamNum = append(m.six.teamNum, make([]string, int(t.Num)-len(m.six.teamNum))...)
	m.six.teamNum[t.Num-1] = t.ID
	m.six.names[1].Insert(nameEntry{fold(t.Name), t.ID})
}

// setTeam moves u into team tid ("" for none).
func (m *Machine) setTeam(u *user, tid string) {
	if u.Team != "" {
		delete(m.six.members[u.Team], u.ID)
	}
	u.Team = tid
	if tid != "" {
		m.addMember(tid, u.ID)
	}
}

func (m *Machine) addMember(tid, uid string) {
	if m.six.members[tid] == nil {
		m.six.members[tid] = map[string]bool{}
	}
	m.six.members[tid][uid] = true
}

// setTaskState moves t to state s, keeping the count of tasks by state and
// of the waiting ones by size (indexes.waiting).
func (m *Machine) setTaskState(t *task, s wu.TaskState) {
	if (t.State == wu.TaskUnsent) != (s == wu.TaskUnsent) {
		d := 1
		if t.State == wu.TaskUnsent {
			d = -1
		}
		m.ix.waiting[bucket(m.st.Units[t.Unit].FPOps)] += d
	}
	if t.State == wu.TaskUnsent && s != wu.TaskUnsent {
		m.waitWork(t, -1)
	}
	m.six.tasks[t.State]--
	t.State = s
	m.six.tasks[s]++
}

// noteAssigned records that h was given t.
func (m *Machine) noteAssigned(h *host, t *task) {
	m.st.Counters.Assigned++
	l := m.six.holding[h.ID]
	if l == nil {
		l = &holdings{}
		m.six.holding[h.ID] = l
	}
	l.ids = append(l.ids, t.ID)
	if len(l.ids) > 2*l.pruned+16 {
		l.prune(m.st, h.ID)
	}
}

// turnaroundWeight is the weight of the newest result in a host's average
// turnaround.
const turnaroundWeight = 0.2

// noteReported records t's result from h.
func (m *Machine) noteReported(h *host, t *task) {
	m.st.Counters.Reported++
	if !t.Sent.IsZero() {
		took := m.st.Now.Sub(t.Sent).Seconds()
		if h.Turnaround == 0 {
			h.Turnaround = took
		} else {
			h.Turnaround += turnaroundWeight * (took - h.Turnaround)
		}
	}
	h.Recent = append(h.Recent, t.ID)
	if n := len(h.Recent); n > RecentResults {
		h.Recent = append(h.Recent[:0], h.Recent[n-RecentResults:]...)
	}
}

// noteFinished counts a unit of batch b decided now.
func (m *Machine) noteFinished(b string) {
	p := m.st.Progress[b]
	if p == nil {
		return
	}
	hour := int32(m.st.Now.Unix() / 3600)
	if n := len(p.Hours); n > 0 && p.Hours[n-1].Hour >= hour {
		p.Hours[n-1].Units++
	} else {
		p.Hours = append(p.Hours, hourCount{hour, 1})
	}
	drop := 0
	for drop < len(p.Hours) && p.Hours[drop].Hour <= hour-ProgressHours {
		drop++
	}
	if drop > 0 {
		p.Hours = append(p.Hours[:0], p.Hours[drop:]...)
	}
}

// Label names a host, user or team for a page: its number and name.
type Label struct {
	ID   string
	Num  uint64
	Name string
	// Of is, in Labels, a host's user or a user's team.
	Of *Label
}

func (m *Machine) hostLabel(h *host) Label  { return Label{ID: h.ID, Num: h.Num, Name: h.Info.Name} }
func (m *Machine) userLabel(u *user) Label  { return Label{ID: u.ID, Num: u.Num, Name: u.Name} }
func (m *Machine) teamLabel(t *team) Label  { return Label{ID: t.ID, Num: t.Num, Name: t.Name} }
func (m *Machine) userOf(id string) *user   { return m.st.Users[id] }
func (m *Machine) teamOfUser(u *user) *team { return m.st.Teams[u.Team] }

// Labels names the hosts (kind 0), users (1) or teams (2) with these ids,
// with each host's user and each user's team.
func (m *Machine) Labels(kind int, ids []string) map[string]Label {
	out := make(map[string]Label, len(ids))
	for _, id := range ids {
		switch kind {
		case 0:
			if h := m.st.Hosts[id]; h != nil {
				l := m.hostLabel(h)
				if u := m.userOf(h.User); u != nil {
					o := m.userLabel(u)
					l.Of = &o
				}
				out[id] = l
			}
		case 1:
			if u := m.st.Users[id]; u != nil {
				l := m.userLabel(u)
				if t := m.teamOfUser(u); t != nil {
					o := m.teamLabel(t)
					l.Of = &o
				}
				out[id] = l
			}
		case 2:
			if t := m.st.Teams[id]; t != nil {
				out[id] = m.teamLabel(t)
			}
		}
	}
	return out
}

// byNum finds what is numbered n in an index (the zero value for none).
func byNum[T any](index []T, n uint64) (t T) {
	if n == 0 || n > uint64(len(index)) {
		return t
	}
	return index[n-1]
}

// HostView is what the stats site shows of a host.
type HostView struct {
	Label
	Info       wu.HostInfo
	User       *Label
	Created    time.Time
	LastSeen   time.Time
	Valid      int
	Invalid    int
	Lost       int
	Turnaround float64 // seconds
	Revoked    bool
	Running    []TaskView
	Recent     []TaskView
}

// TaskView is a task on a host's page.
type TaskView struct {
	ID         string
	Unit       string // the unit's name
	Batch      string
	App        string
	State      wu.TaskState
	Outcome    wu.Outcome
	Validity   wu.Validity
	Fraction   float64
	CPUSeconds float64
	Credit     float64
	Sent       time.Time
	Deadline   time.Time
}

func (m *Machine) taskView(t *task) TaskView {
	u := m.st.Units[t.Unit]
	return TaskView{ID: t.ID, Unit: u.Name, Batch: u.Batch, App: u.App, State: t.State, Outcome: t.Outcome, Validity: t.Validity,
		Fraction: t.Fraction, CPUSeconds: t.CPUSeconds, Credit: t.Credit, Sent: t.Sent, Deadline: t.Deadline}
}

// Host describes the host numbered num.
func (m *Machine) Host(num uint64) (HostView, bool) {
	h := byNum(m.six.hostNum, num)
	if h == nil {
		return HostView{}, false
	}
	v := HostView{Label: m.hostLabel(h), Info: h.Info.wire(), Created: h.Created, LastSeen: h.LastSeen, Valid: int(h.Valid), Invalid: int(h.Invalid),
		Lost: int(h.Lost), Turnaround: h.Turnaround, Revoked: h.Revoked}
	if u := m.userOf(h.User); u != nil {
		l := m.userLabel(u)
		v.User = &l
	}
	if l := m.six.holding[h.ID]; l != nil {
		l := holdings{ids: slices.Clone(l.ids)} // a view changes nothing
		l.prune(m.st, h.ID)
		for _, tid := range l.ids {
			v.Running = append(v.Running, m.taskView(m.st.Tasks[tid]))
		}
	}
	for i := len(h.Recent) - 1; i >= 0; i-- {
		if t := m.st.Tasks[h.Recent[i]]; t != nil {
			v.Recent = append(v.Recent, m.taskView(t))
		}
	}
	return v, true
}

// UserView is what the stats site shows of a user: never the e-mail
// address.
type UserView struct {
	Label
	Team    *Label
	Country string
	Created time.Time
	// Hosts are the ids of its hosts (not revoked), oldest first: some
	// users have thousands, which the page names only the first of by
	// credit.
	Hosts []string
}

// User describes the user numbered num.
func (m *Machine) User(num uint64) (UserView, bool) {
	u := m.st.Users[byNum(m.six.userNum, num)]
	if u == nil {
		return UserView{}, false
	}
	v := UserView{Label: m.userLabel(u), Country: u.Country, Created: u.Created}
	if t := m.teamOfUser(u); t != nil {
		l := m.teamLabel(t)
		v.Team = &l
	}
	// The ids in the index (no other field of a host is read): a user may
	// have a hundred thousand hosts.
	if hosts := m.six.userHosts[u.ID]; hosts != nil {
		v.Hosts = make([]string, len(hosts))
		for i, h := range hosts {
			v.Hosts[i] = h.ID
		}
	}
	return v, true
}

// TeamView is what the stats site shows of a team.
type TeamView struct {
	Label
	Type        int
	Country     string
	URL         string
	Description string
	Founder     *Label
	Created     time.Time
	Members     int // how many users it has
}

// Team describes the team numbered num, members included.
func (m *Machine) Team(num uint64) (TeamView, bool) {
	t := m.st.Teams[byNum(m.six.teamNum, num)]
	if t == nil {
		return TeamView{}, false
	}
	v := TeamView{Label: m.teamLabel(t), Type: teamType(t), Country: t.Country, URL: t.URL, Description: t.Description, Created: t.Created}
	if f := m.userOf(t.Founder); f != nil {
		l := m.userLabel(f)
		v.Founder = &l
	}
	v.Members = len(m.six.members[t.ID])
	return v, true
}

// TeamMembers lists the ids of the users of the team numbered num, in no
// order (the accounting peer orders them).
func (m *Machine) TeamMembers(num uint64) []string {
	members := m.six.members[byNum(m.six.teamNum, num)]
	ids := make([]string, 0, len(members))
	for uid := range members {
		ids = append(ids, uid)
	}
	return ids
}

func teamType(t *team) int { return max(t.Type, 1) }

// Search finds up to limit users (kind 1) or teams (kind 2) whose name
// starts with prefix, ignoring case, in the order of their names.
func (m *Machine) Search(kind int, prefix string, limit int) []Label {
	names := m.six.names[0]
	if kind == 2 {
		names = m.six.names[1]
	}
	p := fold(prefix)
	var out []Label
	for _, e := range names.Slice(nil, names.Search(nameEntry{p, ""}), limit) {
		if !strings.HasPrefix(e.folded, p) {
			break
		}
		if kind == 2 {
			out = append(out, m.teamLabel(m.st.Teams[e.id]))
		} else {
			out = append(out, m.userLabel(m.st.Users[e.id]))
		}
	}
	return out
}

// BatchView is a batch's progress.
type BatchView struct {
	Name      string
	App       string
	Units     int
	Valid     int
	Errored   int
	Cancelled int
	Pending   int
	Created   time.Time
	// Finished counts units decided per hour, the last ProgressHours hours
	// up to Now, oldest first.
	Finished []int
	Now      time.Time
}

// Batches lists every batch in brief, by name.
func (m *Machine) Batches() []BatchView {
	out := make([]BatchView, 0, len(m.st.Batches))
	for _, name := range sortedKeys(m.st.Batches) {
		out = append(out, m.batchView(m.st.Batches[name], false))
	}
	return out
}

func (m *Machine) batchView(b *batch, hours bool) BatchView {
	v := BatchView{Name: b.Name, App: b.App, Units: len(b.Units), Valid: b.Valid, Errored: b.Errored, Cancelled: b.Cancelled, Pending: b.Pending, Now: m.st.Now}
	p := m.st.Progress[b.Name]
	if p == nil {
		return v
	}
	v.Created = p.Created
	if hours {
		now := int32(m.st.Now.Unix() / 3600)
		v.Finished = make([]int, ProgressHours)
		for _, h := range p.Hours {
			if i := int(h.Hour - (now - ProgressHours + 1)); i >= 0 && i < ProgressHours {
				v.Finished[i] += h.Units
			}
		}
	}
	return v
}

// Batch describes one batch with its hourly progress, and the canonical
// outputs of up to pictures of its valid units (some apps' outputs are
// pictures).
func (m *Machine) Batch(name string, pictures int) (BatchView, []wu.UnitResult, bool) {
	b := m.st.Batches[name]
	if b == nil {
		return BatchView{}, nil, false
	}
	var valid []wu.UnitResult
	// Bounded, so that a batch with few valid units is not walked whole.
	for i := 0; i < len(b.Units) && i < 4096 && len(valid) < pictures; i++ {
		if u := m.st.Units[b.Units[i]]; u.State == wu.WorkUnitValid {
			valid = append(valid, wu.UnitResult{ID: u.ID, Name: u.Name, State: u.State, Output: u.Canonical, OutputSize: u.OutputSize})
		}
	}
	return m.batchView(b, true), valid, true
}

// Apps lists the apps by name.
func (m *Machine) Apps() []wu.App {
	out := make([]wu.App, 0, len(m.st.Apps))
	for _, name := range sortedKeys(m.st.Apps) {
		out = append(out, m.st.Apps[name])
	}
	return out
}

// Census is the whole in numbers.
type Census struct {
	Now                  time.Time
	Hosts, Users, Teams  int
	Tasks                map[wu.TaskState]int
	Assigned, Reported   uint64 // ever
	Units, Batches, Apps int
	Outbox               int // grants not yet acknowledged by the accounting peer
}

// Census counts what the scheduler holds.
func (m *Machine) Census() Census {
	c := Census{Now: m.st.Now, Hosts: len(m.st.Hosts), Users: len(m.st.Users), Teams: len(m.st.Teams), Tasks: map[wu.TaskState]int{},
		Assigned: m.st.Counters.Assigned, Reported: m.st.Counters.Reported, Units: len(m.st.Units), Batches: len(m.st.Batches),
		Apps: len(m.st.Apps), Outbox: len(m.st.Outbox)}
	for s, n := range m.six.tasks {
		if n != 0 {
			c.Tasks[s] = n
		}
	}
	return c
}

// Record is one host, user or team as BOINC's statistics exports write it
// (DESIGN §9): e-mail addresses stay in the scheduler, only their hashes
// with the cross-project id leave it.
type Record struct {
	ID        string
	Num       uint64
	Name      string
	Created   time.Time
	CPID      string // users: md5(cross-project id + e-mail); hosts: md5(host cpid + the owner's e-mail)
	Country   string
	TeamNum   uint64 // users
	UserNum   uint64 // hosts: the owner; teams: the founder
	UserName  string // teams: the founder's name
	NoExport  bool   // users, hosts: the user left the exports
	Type      int    // teams
	URL       string // teams
	Text      string // teams: the description
	Info      wu.HostInfo
	LastSeen  time.Time
	Turnround float64
}

// Records fills the records of kind (0 hosts, 1 users, 2 teams) numbered
// from `from` up to `to` (not included; gaps in the numbers skipped), each
// into the record next returns, and reports whether any are numbered `to`
// or more. An export reads them a slice of numbers at a time, so that the
// scheduler is never held for long, several slices at once (a slice's
// numbers are known before the one before it is read), each into a buffer
// of its own: a record is written where it is kept, never copied (a
// host's is some 400 bytes, and a million of them are exported).
func (m *Machine) Records(kind int, from, to uint64, next func() *Record) (more bool) {
	n := uint64([3]int{len(m.six.hostNum), len(m.six.userNum), len(m.six.teamNum)}[kind])
	for num := max(from, 1); num < to && num <= n; num++ {
		switch kind {
		case 0:
			if h := m.six.hostNum[num-1]; h != nil {
				m.hostRecord(next(), h)
			}
		case 1:
			if u := m.st.Users[m.six.userNum[num-1]]; u != nil {
				m.userRecord(next(), u)
			}
		case 2:
			if t := m.st.Teams[m.six.teamNum[num-1]]; t != nil {
				m.teamRecord(next(), t)
			}
		}
	}
	return to <= n
}

func md5hex(s string) string {
	sum := md5.Sum([]byte(s))
	return hex.EncodeToString(sum[:])
}

func (m *Machine) userRecord(r *Record, u *user) {
	*r = Record{ID: u.ID, Num: u.Num, Name: u.Name, Created: u.Created, CPID: md5hex(u.XProject + u.Email), Country: u.Country, NoExport: u.NoExport}
	if t := m.teamOfUser(u); t != nil {
		r.TeamNum = t.Num
	}
}

func (m *Machine) hostRecord(r *Record, h *host) {
	*r = Record{ID: h.ID, Num: h.Num, Name: h.Info.Name, Created: h.Created, Info: h.Info.wire(), LastSeen: h.LastSeen, Turnround: h.Turnaround}
	own := h.Info.CPID
	if own == "" {
		own = md5hex("momonga host\x00" + h.ID)
	}
	email := ""
	if u := m.userOf(h.User); u != nil {
		r.UserNum, r.NoExport, email = u.Num, u.NoExport, u.Email
	}
	r.CPID = md5hex(own + email)
}

func (m *Machine) teamRecord(r *Record, t *team) {
	*r = Record{ID: t.ID, Num: t.Num, Name: t.Name, Created: t.Created, Country: t.Country, Type: teamType(t), URL: t.URL, Text: t.Description}
	if f := m.userOf(t.Founder); f != nil {
		r.UserNum, r.UserName = f.Num, f.Name
	}
}

// userSet changes a user's settings: named by the project's tools, or the
// user of the host that asks (vol.H.account).
func (m *Machine) userSet(host string, req wu.UserSet) (*wu.Ack, error) {
	var u *user
	switch {
	case req.User != "":
		u = m.st.Users[m.ix.userByName[req.User]]
		if u == nil {
			return nil, wu.Errorf(wu.CodeNotFound, "no user named %q", req.User)
		}
	default:
		h, err := m.knownHost(host)
		if err != nil {
			return nil, err
		}
		if u = m.userOf(h.User); u == nil {
			return nil, wu.Errorf(wu.CodeBadRequest, "this host belongs to no user (an open project): attach it with an account key first")
		}
	}
	tid := u.Team
	if req.Team != nil {
		tid = ""
		if *req.Team != "" {
			var ok bool
			if tid, ok = m.ix.teamByName[*req.Team]; !ok {
				return nil, wu.Errorf(wu.CodeNotFound, "no team named %q: the project lists its teams on its stats site", *req.Team)
			}
		}
	}
	m.setTeam(u, tid)
	if req.Country != nil {
		u.Country = *req.Country
	}
	if req.StatsExport != nil {
		u.NoExport = !*req.StatsExport
	}
	return &wu.Ack{V: wu.WireVersion}, nil
}

// account handles vol.H.account: the host's user's settings.
func (m *Machine) account(host string, req wu.UserSet) (*wu.Ack, error) {
	if req.User != "" {
		return nil, wu.Errorf(wu.CodeForbidden, "a host changes its own user's settings only: name no user")
	}
	return m.userSet(host, req)
}
