package accounting

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"reflect"
	"slices"
	"sort"
	"testing"
	"time"

	"github.com/momonga-project/momonga/project/credit"
)

// randomGrants credits hosts, users and teams at random over days days.
func randomGrants(r *rand.Rand, n, days int) []Grant {
	var gs []Grant
	for i := range n {
		h := r.IntN(300)
		at := t0.Add(time.Duration(r.IntN(days*24*3600)) * time.Second)
		g := Grant{ID: uint64(i + 1), Task: "t", Host: fmt.Sprintf("h%d", h), User: fmt.Sprintf("u%d", h%40),
			Credit: float64(r.IntN(1000)) / 10, Sent: at.Add(-time.Hour), At: at}
		if h%3 != 0 {
			g.Team = fmt.Sprintf("t%d", h%7)
		}
		gs = append(gs, g)
	}
	// The scheduler grants in time order.
	sort.SliceStable(gs, func(i, j int) bool { return gs[i].At.Before(gs[j].At) })
	for i := range gs {
		gs[i].ID = uint64(i + 1)
	}
	return gs
}

// TestBoardsAreTheSortedAccounts checks the leaderboards kept as grants
// arrive against a sort of every account, for both orders, at a time when
// the averages have decayed.
func TestBoardsAreTheSortedAccounts(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	m := New()
	for _, chunk := range slices.Collect(slices.Chunk(randomGrants(r, 5000, 60), 100)) {
		if rc := m.Receive(Delivery{V: Version, Source: "sched", Grants: chunk}); rc.Error != nil {
			t.Fatal(rc.Error)
		}
	}
	now := t0.Add(75 * 24 * time.Hour)
	for k := range kinds {
		type acc struct {
			id          string
			credit, rac float64
		}
		var all []acc
		for id, a := range m.table(k) {
			all = append(all, acc{id, a.Credit, a.RAC.At(now)})
		}
		for o := range orders {
			sort.Slice(all, func(i, j int) bool {
				x, y := all[i].credit, all[j].credit
				if o == ByRAC {
					x, y = all[i].rac, all[j].rac
				}
				if x != y {
					return x > y
				}
				return all[i].id < all[j].id
			})
			board := m.Board(k, o, 0, len(all)+10, now)
			if len(board) != len(all) || m.Count(k) != len(all) {
				t.Fatalf("%s board holds %d of %d", k, len(board), len(all))
			}
			for i, s := range board {
				// Equal decayed averages can differ in their last bits.
				if s.ID != all[i].id && !(o == ByRAC && close(s.RAC, all[i].rac)) {
					t.Fatalf("%s by %d: position %d is %s (%g), want %s (%g)", k, o, i, s.ID, s.RAC, all[i].id, all[i].rac)
				}
				st, ok := m.Standing(k, s.ID, now)
				rank := st.CreditRank
				if o == ByRAC {
					rank = st.RACRank
				}
				if !ok || rank != i+1 {
					t.Fatalf("%s %s: rank %d, at position %d", k, s.ID, rank, i)
				}
			}
			if len(all) < 12 {
				continue
			}
			page := m.Board(k, o, 7, 5, now)
			if len(page) != 5 || page[0].ID != board[7].ID || page[4].ID != board[11].ID {
				t.Fatalf("%s page from 7: %+v", k, page)
			}
		}
	}
}

func close(a, b float64) bool { return a == b || (a-b)/(a+b) < 1e-12 && (b-a)/(a+b) < 1e-12 }

// TestRestoredIndexEqualsTheOneKept: a member that restores a snapshot and
// one that applied every grant answer the same boards, ranks and counts.
func TestRestoredIndexEqualsTheOneKept(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 8))
	gs := randomGrants(r, 3000, 30)
	m := New()
	m.Receive(Delivery{V: Version, Source: "sched", Grants: gs[:2000]})
	var snap bytes.Buffer
	if err := m.Snapshot(&snap); err != nil {
		t.Fatal(err)
	}
	restored := New()
	if err := restored.Restore(&snap); err != nil {
		t.Fatal(err)
	}
	for _, x := range []*Machine{m, restored} {
		x.Receive(Delivery{V: Version, Source: "sched", Grants: gs[2000:]})
	}
	now := gs[len(gs)-1].At
	for k := range kinds {
		for o := range orders {
			if a, b := m.Board(k, o, 0, 1000, now), restored.Board(k, o, 0, 1000, now); !reflect.DeepEqual(a, b) {
				t.Fatalf("%s boards differ after a restore", k)
			}
		}
		if a, b := m.Active(k, now, 7), restored.Active(k, now, 7); a != b || a == 0 {
			t.Fatalf("%s active: %d and %d", k, a, b)
		}
	}
	if !reflect.DeepEqual(m.History(), restored.History()) {
		t.Fatal("project history differs after a restore")
	}
}

func TestHistoryIsBoundedAndSumsToTheCredit(t *testing.T) {
	m := New()
	var gs []Grant
	for d := range 200 {
		at := t0.Add(time.Duration(d)*24*time.Hour + time.Hour)
		gs = append(gs, Grant{ID: uint64(d + 1), Task: "t", Host: "h1", User: "u1", Credit: 2, Sent: at, At: at})
	}
	m.Receive(Delivery{V: Version, Source: "sched", Grants: gs})
	now := gs[len(gs)-1].At
	s, ok := m.Standing(Hosts, "h1", now)
	if !ok || len(s.Days) != HistoryDays || s.Days[0].At != Day(now)-HistoryDays+1 {
		t.Fatalf("host keeps %d days from %d", len(s.Days), s.Days[0].At)
	}
	if sum := Since(s.Months, 0); sum != 400 {
		t.Fatalf("months sum to %g, want 400", sum)
	}
	if got := Series(s.Days, Day(now), 3); !slices.Equal(got, []float64{2, 2, 2}) {
		t.Fatalf("last three days: %v", got)
	}
	p := m.History()
	if len(p.Days) != 200 || len(p.Hours) != 2 || Since(p.Hours, Hour(now)-23) != 2 {
		t.Fatalf("project: %d days, %d hours", len(p.Days), len(p.Hours))
	}
	if a := m.Active(Hosts, now.Add(8*24*time.Hour), 7); a != 0 {
		t.Fatalf("a host last credited 8 days ago counts as active: %d", a)
	}
	if a := m.Active(Users, now.Add(6*24*time.Hour), 7); a != 1 {
		t.Fatalf("a user credited 6 days ago: active %d", a)
	}
}

// TestVersion1SnapshotRestores: a snapshot written before the history
// existed restores, with its accounts ranked and no history.
func TestVersion1SnapshotRestores(t *testing.T) {
	v1 := `{"v":1,"sources":{"sched":3},"hosts":{"h1":{"credit":5,"rac":{"avg":2,"time":"2026-01-01T03:00:00Z"},"results":2},"h2":{"credit":7,"rac":{"avg":1,"time":"2026-01-01T02:00:00Z"},"results":1}},"users":{"u1":{"credit":12,"rac":{"avg":3,"time":"2026-01-01T03:00:00Z"},"results":3}},"teams":{}}`
	m := New()
	if err := m.Restore(bytes.NewReader([]byte(v1))); err != nil {
		t.Fatal(err)
	}
	now := t0.Add(4 * time.Hour)
	b := m.Board(Hosts, ByCredit, 0, 10, now)
	if len(b) != 2 || b[0].ID != "h2" || b[1].CreditRank != 2 {
		t.Fatalf("board: %+v", b)
	}
	if b := m.Board(Hosts, ByRAC, 0, 10, now); b[0].ID != "h1" {
		t.Fatalf("by RAC: %+v", b)
	}
	rc := m.Receive(Delivery{V: Version, Source: "sched", Grants: []Grant{{ID: 4, Task: "t", Host: "h1", User: "u1", Credit: 3, Sent: now, At: now}}})
	if rc.Applied != 1 {
		t.Fatal(rc)
	}
	if s, _ := m.Standing(Hosts, "h1", now); s.CreditRank != 1 || s.Credit != 8 || len(s.Days) != 1 {
		t.Fatalf("h1 after a grant: %+v", s)
	}
	var snap bytes.Buffer
	_ = m.Snapshot(&snap)
	if !bytes.HasPrefix(snap.Bytes(), snapshotMagic) {
		t.Fatalf("snapshot after a version-1 restore is not binary: %q", snap.Bytes())
	}
	if err := New().Restore(&snap); err != nil {
		t.Fatal(err)
	}
}

func TestRACKeyKeepsTheDecayedOrder(t *testing.T) {
	a := credit.Average{Avg: 100, Time: t0}
	b := credit.Average{Avg: 60, Time: t0.Add(5 * 24 * time.Hour)}
	c := credit.Average{Avg: 62, Time: t0.Add(5 * 24 * time.Hour)}
	now := t0.Add(30 * 24 * time.Hour)
	for _, p := range [][2]credit.Average{{a, b}, {c, a}} {
		if (racKey(p[0]) > racKey(p[1])) != (p[0].At(now) > p[1].At(now)) {
			t.Fatalf("key order of %+v and %+v differs from their decayed order", p[0], p[1])
		}
	}
}

func TestTopOrdersAGroupByCredit(t *testing.T) {
	r := rand.New(rand.NewPCG(9, 9))
	m := New()
	m.Receive(Delivery{V: Version, Source: "sched", Grants: randomGrants(r, 2000, 10)})
	var ids []string
	for i := range 40 {
		ids = append(ids, fmt.Sprintf("u%d", i))
	}
	ids = append(ids, "nobody")
	now := t0.Add(20 * 24 * time.Hour)
	all := m.Top(Users, ids, len(ids), now)
	if len(all) != len(ids) || all[len(all)-1].ID != "nobody" {
		t.Fatalf("top of all: %d, last %+v", len(all), all[len(all)-1])
	}
	for i := 1; i < len(all); i++ {
		if all[i].Credit > all[i-1].Credit {
			t.Fatalf("out of order at %d: %+v", i, all[i-1:i+1])
		}
	}
	if top := m.Top(Users, ids, 5, now); !reflect.DeepEqual(top, all[:5]) {
		t.Fatalf("top 5 %+v, of all %+v", top, all[:5])
	}
}
