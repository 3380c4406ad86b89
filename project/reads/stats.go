package reads

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/momonga-project/momonga/project/accounting"
	"github.com/momonga-project/momonga/project/credit"
	"github.com/momonga-project/momonga/project/sched"
	"github.com/momonga-project/momonga/project/stats"
	"github.com/momonga-project/momonga/vpeer"
	wu "github.com/momonga-project/momonga/workunits"
)

// Stats answers the stats site (project/stats) from a member of each peer
// here: descriptions and progress from the scheduler, credit, history and
// ranks from the accounting peer. A page reads each peer once or twice,
// as of what its member has applied (not a linearizable read: a page is
// not a reply to a request), and each read is a lookup in their indexes.
type Stats struct {
	Sched, Acct Peer
	// Project is the project's name, for the front page.
	Project string
}

var _ stats.Source = Stats{}

func (s Stats) sched(ctx context.Context, fn func(*sched.Machine)) error {
	if err := s.Sched.Query(ctx, func(m *vpeer.Member) { fn(schedOf(m)) }); err != nil {
		return notReady("scheduler")
	}
	return nil
}

func (s Stats) acct(ctx context.Context, fn func(*accounting.Machine)) error {
	if err := s.Acct.Query(ctx, func(m *vpeer.Member) { fn(acctOf(m)) }); err != nil {
		return notReady("accounting peer")
	}
	return nil
}

func kindOf(k stats.Kind) (accounting.Kind, int) {
	switch k {
	case stats.Users:
		return accounting.Users, 1
	case stats.Teams:
		return accounting.Teams, 2
	}
	return accounting.Hosts, 0
}

func orderOf(o stats.Order) accounting.Order {
	if o == stats.ByRAC {
		return accounting.ByRAC
	}
	return accounting.ByCredit
}

func ref(l *sched.Label) *stats.Ref {
	if l == nil {
		return nil
	}
	return &stats.Ref{ID: l.Num, Name: l.Name}
}

// Overview is the front page.
func (s Stats) Overview(ctx context.Context) (stats.Overview, error) {
	o := stats.Overview{Project: s.Project}
	err := s.sched(ctx, func(m *sched.Machine) {
		o.Now = m.Now()
		for _, b := range m.Batches() {
			o.Batches = append(o.Batches, summary(b))
		}
	})
	if err != nil {
		return o, err
	}
	// Batches in progress first, then the newest finished.
	slices.SortStableFunc(o.Batches, func(a, b stats.BatchSummary) int { return cmp.Compare(b.Pending, a.Pending) })
	var hist accounting.Totals
	err = s.acct(ctx, func(m *accounting.Machine) {
		o.Hosts, o.Users, o.Teams = m.Count(accounting.Hosts), m.Count(accounting.Users), m.Count(accounting.Teams)
		o.ActiveHosts = m.Active(accounting.Hosts, o.Now, stats.ActiveDays)
		o.ActiveUsers = m.Active(accounting.Users, o.Now, stats.ActiveDays)
		hist = m.History()
	})
	if err != nil {
		return o, err
	}
	o.TotalCredit = accounting.Since(hist.Months, 0)
	day := accounting.Since(hist.Hours, accounting.Hour(o.Now)-23)
	o.FLOPS = day * credit.FLOPsPerCobblestone / 86400
	o.Daily = days(hist.Days, o.Now, 30)
	return o, nil
}

func summary(b sched.BatchView) stats.BatchSummary {
	return stats.BatchSummary{Name: b.Name, App: b.App, Units: b.Units, Valid: b.Valid, Errored: b.Errored, Cancelled: b.Cancelled, Pending: b.Pending}
}

// days spreads a daily history over the n days up to now's.
func days(h []accounting.Bucket, now time.Time, n int) []stats.Point {
	last := accounting.Day(now)
	out := make([]stats.Point, n)
	for i, c := range accounting.Series(h, last, n) {
		out[i] = stats.Point{Date: accounting.DayTime(last - int32(n-1-i)).Format("2006-01-02"), Credit: c}
	}
	return out
}

func history(st accounting.Standing, now time.Time) stats.History {
	h := stats.History{Days: days(st.Days, now, accounting.HistoryDays), Months: []stats.Point{}}
	for _, b := range st.Months {
		h.Months = append(h.Months, stats.Point{Date: accounting.MonthTime(b.At).Format("2006-01"), Credit: b.Credit})
	}
	return h
}

func creditOf(st accounting.Standing) stats.Credit {
	return stats.Credit{Total: st.Credit, RAC: st.RAC, Results: st.Results, CreditRank: st.CreditRank, RACRank: st.RACRank}
}

// Board is a page of a leaderboard.
func (s Stats) Board(ctx context.Context, kind stats.Kind, by stats.Order, offset, limit int) (stats.Board, error) {
	b := stats.Board{Kind: kind, By: by, Offset: offset, Limit: limit, Entries: []stats.Entry{}}
	k, sk := kindOf(kind)
	if err := s.sched(ctx, func(m *sched.Machine) { b.Now = m.Now() }); err != nil {
		return b, err
	}
	var rows []accounting.Standing
	err := s.acct(ctx, func(m *accounting.Machine) {
		b.Total = m.Count(k)
		rows = m.Board(k, orderOf(by), offset, limit, b.Now)
	})
	if err != nil {
		return b, err
	}
	ids := make([]string, len(rows))
	for i, r := range rows {
		ids[i] = r.ID
	}
	var labels map[string]sched.Label
	if err := s.sched(ctx, func(m *sched.Machine) { labels = m.Labels(sk, ids) }); err != nil {
		return b, err
	}
	for i, r := range rows {
		l := labels[r.ID]
		b.Entries = append(b.Entries, stats.Entry{Rank: offset + i + 1, Ref: stats.Ref{ID: l.Num, Name: l.Name}, Of: ref(l.Of), Credit: r.Credit, RAC: r.RAC})
	}
	return b, nil
}

// standing reads one account's standing as of now.
func (s Stats) standing(ctx context.Context, k accounting.Kind, id string, now time.Time) (st accounting.Standing, err error) {
	err = s.acct(ctx, func(m *accounting.Machine) { st, _ = m.Standing(k, id, now) })
	return st, err
}

// entries lists the first limit of the accounts of kind k with these ids
// by total credit, named.
func (s Stats) entries(ctx context.Context, kind stats.Kind, ids []string, limit int, now time.Time) ([]stats.Entry, error) {
	k, sk := kindOf(kind)
	var top []accounting.Standing
	if err := s.acct(ctx, func(m *accounting.Machine) { top = m.Top(k, ids, limit, now) }); err != nil {
		return nil, err
	}
	named := make([]string, len(top))
	for i, st := range top {
		named[i] = st.ID
	}
	var labels map[string]sched.Label
	if err := s.sched(ctx, func(m *sched.Machine) { labels = m.Labels(sk, named) }); err != nil {
		return nil, err
	}
	out := make([]stats.Entry, len(top))
	for i, st := range top {
		l := labels[st.ID]
		out[i] = stats.Entry{Ref: stats.Ref{ID: l.Num, Name: l.Name}, Credit: st.Credit, RAC: st.RAC}
	}
	return out, nil
}

// User is a user's page.
func (s Stats) User(ctx context.Context, id uint64) (stats.UserPage, error) {
	var (
		v  sched.UserView
		ok bool
		p  stats.UserPage
	)
	if err := s.sched(ctx, func(m *sched.Machine) { v, ok = m.User(id); p.Now = m.Now() }); err != nil || !ok {
		return p, orNotFound(err)
	}
	p.Ref, p.Country, p.Created, p.Team = stats.Ref{ID: v.Num, Name: v.Name}, v.Country, v.Created, ref(v.Team)
	st, err := s.standing(ctx, accounting.Users, v.ID, p.Now)
	if err != nil {
		return p, err
	}
	p.Credit, p.History = creditOf(st), history(st, p.Now)
	p.HostsTotal = len(v.Hosts)
	p.Hosts, err = s.entries(ctx, stats.Hosts, v.Hosts, stats.MaxHosts, p.Now)
	return p, err
}

// Team is a team's page.
func (s Stats) Team(ctx context.Context, id uint64) (stats.TeamPage, error) {
	var (
		v  sched.TeamView
		ok bool
		p  stats.TeamPage
	)
	if err := s.sched(ctx, func(m *sched.Machine) { v, ok = m.Team(id); p.Now = m.Now() }); err != nil || !ok {
		return p, orNotFound(err)
	}
	p.Ref, p.Type, p.Country, p.URL, p.Description = stats.Ref{ID: v.Num, Name: v.Name}, v.Type, v.Country, v.URL, v.Description
	p.Founder, p.Created = ref(v.Founder), v.Created
	st, err := s.standing(ctx, accounting.Teams, v.ID, p.Now)
	if err != nil {
		return p, err
	}
	p.Credit, p.History = creditOf(st), history(st, p.Now)
	p.MembersTotal = v.Members
	p.Members, err = s.members(ctx, v, p.Now)
	return p, err
}

// membersWalked bounds the accounting peer's members of a team a page
// reads (some may have left the team since their last credit) before it
// reads every member's credit instead.
const membersWalked = 4 * stats.MaxMembers

// members lists the first of a team's users by total credit. The
// accounting peer keeps each team's users in that order, as of their last
// credit (accounting.TeamMembers): the page reads that order and keeps
// those still in the team, a lookup. Only when that does not fill the page
// (a small team, or users not credited since they joined) does it read
// the credit of every member, as it did before the lists existed. A user
// who joined with credit earned elsewhere is on the list from the first
// credit in the team: a large team's page leaves them out until then.
func (s Stats) members(ctx context.Context, v sched.TeamView, now time.Time) ([]stats.Entry, error) {
	want := min(stats.MaxMembers, v.Members)
	out := make([]stats.Entry, 0, want)
	for offset := 0; len(out) < want && offset < membersWalked; offset += stats.MaxMembers {
		var rows []accounting.Standing
		if err := s.acct(ctx, func(m *accounting.Machine) { rows, _ = m.TeamMembers(v.ID, offset, stats.MaxMembers, now) }); err != nil {
			return nil, err
		}
		ids := make([]string, len(rows))
		for i, r := range rows {
			ids[i] = r.ID
		}
		var labels map[string]sched.Label
		if err := s.sched(ctx, func(m *sched.Machine) { labels = m.Labels(1, ids) }); err != nil {
			return nil, err
		}
		for _, r := range rows {
			if l, ok := labels[r.ID]; ok && l.Of != nil && l.Of.ID == v.ID && len(out) < want {
				out = append(out, stats.Entry{Ref: stats.Ref{ID: l.Num, Name: l.Name}, Credit: r.Credit, RAC: r.RAC})
			}
		}
		if len(rows) < stats.MaxMembers {
			break
		}
	}
	if len(out) == want {
		return out, nil
	}
	var ids []string
	if err := s.sched(ctx, func(m *sched.Machine) { ids = m.TeamMembers(v.Num) }); err != nil {
		return nil, err
	}
	return s.entries(ctx, stats.Users, ids, stats.MaxMembers, now)
}

// Host is a host's page.
func (s Stats) Host(ctx context.Context, id uint64) (stats.HostPage, error) {
	var (
		v  sched.HostView
		ok bool
		p  stats.HostPage
	)
	if err := s.sched(ctx, func(m *sched.Machine) { v, ok = m.Host(id); p.Now = m.Now() }); err != nil || !ok {
		return p, orNotFound(err)
	}
	in := v.Info
	p.Ref, p.User = stats.Ref{ID: v.Num, Name: v.Name}, ref(v.User)
	p.OS, p.OSVersion, p.Arch, p.CPUVendor, p.CPUModel, p.CPUs = in.OS, in.OSVersion, in.Arch, in.CPUVendor, in.CPUModel, in.CPUs
	p.Memory, p.DiskFree, p.DiskTotal, p.FLOPS, p.IOPS, p.MemBW, p.WasmOPS = in.MemoryBytes, in.DiskFreeBytes, in.DiskTotalBytes, in.FLOPS, in.IOPS, in.MemBytesPerSec, in.WasmOPS
	p.Created, p.LastSeen, p.Valid, p.Invalid, p.Lost, p.Turnaround, p.Revoked = v.Created, v.LastSeen, v.Valid, v.Invalid, v.Lost, v.Turnaround, v.Revoked
	p.Running, p.Recent = tasks(v.Running), tasks(v.Recent)
	st, err := s.standing(ctx, accounting.Hosts, v.ID, p.Now)
	p.Credit, p.History = creditOf(st), history(st, p.Now)
	return p, err
}

func tasks(ts []sched.TaskView) []stats.Task {
	out := make([]stats.Task, len(ts))
	for i, t := range ts {
		out[i] = stats.Task{ID: t.ID, Batch: t.Batch, Unit: t.Unit, App: t.App, State: string(t.State), Outcome: string(t.Outcome),
			Validity: string(t.Validity), Fraction: t.Fraction, CPUSeconds: t.CPUSeconds, Credit: t.Credit, Sent: t.Sent}
	}
	return out
}

// Apps lists the apps and their batches.
func (s Stats) Apps(ctx context.Context) (stats.AppsPage, error) {
	var (
		p       stats.AppsPage
		apps    []wu.App
		batches []sched.BatchView
	)
	if err := s.sched(ctx, func(m *sched.Machine) { apps, batches, p.Now = m.Apps(), m.Batches(), m.Now() }); err != nil {
		return p, err
	}
	p.Apps = []stats.App{}
	for _, a := range apps {
		app := stats.App{Name: a.Name, Hash: string(a.Hash), Size: a.Size, Added: a.Added, Replication: a.Policy.Replication,
			Quorum: a.Policy.Quorum, Adaptive: a.Policy.Adaptive, Batches: []stats.BatchSummary{}}
		for _, b := range batches {
			if b.App == a.Name {
				app.Batches = append(app.Batches, summary(b))
			}
		}
		p.Apps = append(p.Apps, app)
	}
	return p, nil
}

// PicturesPerBatch bounds the pictures a batch's page shows.
const PicturesPerBatch = 24

// Batch is a batch's page.
func (s Stats) Batch(ctx context.Context, name string) (stats.BatchPage, error) {
	var (
		v     sched.BatchView
		valid []wu.UnitResult
		ok    bool
	)
	if err := s.sched(ctx, func(m *sched.Machine) { v, valid, ok = m.Batch(name, PicturesPerBatch) }); err != nil || !ok {
		return stats.BatchPage{}, orNotFound(err)
	}
	p := stats.BatchPage{BatchSummary: summary(v), Now: v.Now, Created: v.Created, Hourly: v.Finished[max(len(v.Finished)-48, 0):]}
	// The rate of the last day, or of the batch's life if shorter.
	hours := min(24, max(1, v.Now.Sub(v.Created).Hours()))
	done := 0
	for _, n := range v.Finished[len(v.Finished)-24:] {
		done += n
	}
	p.PerHour = float64(done) / hours
	if p.PerHour > 0 && v.Pending > 0 {
		p.ETASeconds = float64(v.Pending) / p.PerHour * 3600
	}
	for _, u := range valid {
		p.Pictures = append(p.Pictures, stats.Picture{Unit: u.Name, Output: string(u.Output)})
	}
	return p, nil
}

// Search finds users and teams whose names start with query.
func (s Stats) Search(ctx context.Context, query string, limit int) (stats.SearchPage, error) {
	p := stats.SearchPage{Query: query, Users: []stats.Ref{}, Teams: []stats.Ref{}}
	err := s.sched(ctx, func(m *sched.Machine) {
		for _, l := range m.Search(1, query, limit) {
			p.Users = append(p.Users, stats.Ref{ID: l.Num, Name: l.Name})
		}
		for _, l := range m.Search(2, query, limit) {
			p.Teams = append(p.Teams, stats.Ref{ID: l.Num, Name: l.Name})
		}
	})
	return p, err
}

func orNotFound(err error) error {
	if err != nil {
		return err
	}
	return stats.ErrNotFound
}

// Records appends to dst the records of kind numbered from `from` up to
// `to`, with their credit, for the exports (stats.ExportSource).
func (s Stats) Records(ctx context.Context, kind stats.Kind, from, to uint64, dst []stats.Record) ([]stats.Record, bool, error) {
	k, sk := kindOf(kind)
	start := len(dst)
	dst = slices.Grow(dst, int(to-from))
	var more bool
	err := s.sched(ctx, func(m *sched.Machine) {
		more = m.Records(sk, from, to, func() *sched.Record {
			dst = append(dst, stats.Record{})
			return &dst[len(dst)-1].Record
		})
	})
	if err != nil {
		return dst, false, err
	}
	err = s.acct(ctx, func(m *accounting.Machine) {
		for i := start; i < len(dst); i++ {
			r := &dst[i]
			var avg credit.Average
			r.Credit, avg = m.Credit(k, r.ID)
			r.RAC, r.RACTime = avg.Avg, avg.Time
		}
	})
	return dst, more, err
}

// ExportApps names the apps for tables.xml.
func (s Stats) ExportApps(ctx context.Context) ([]string, error) {
	var names []string
	err := s.sched(ctx, func(m *sched.Machine) {
		for _, a := range m.Apps() {
			names = append(names, a.Name)
		}
	})
	return names, err
}

// Time is the scheduler's time, for the exports' update_time.
func (s Stats) Time(ctx context.Context) (time.Time, error) {
	var now time.Time
	err := s.sched(ctx, func(m *sched.Machine) { now = m.Now() })
	if err == nil && now.IsZero() {
		err = fmt.Errorf("the scheduler has no time yet")
	}
	return now, err
}
