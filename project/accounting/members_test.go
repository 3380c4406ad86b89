package accounting

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"reflect"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"
)

// TestTeamMembersFollowTheLastGrant checks each team's list, kept as
// grants arrive, against the users whose last grant named the team sorted
// by credit: users move between teams (and out of any) with their grants.
// A restored machine lists the same.
func TestTeamMembersFollowTheLastGrant(t *testing.T) {
	r := rand.New(rand.NewPCG(8, 9))
	gs := randomGrants(r, 4000, 30)
	m := New()
	for _, chunk := range slices.Collect(slices.Chunk(gs, 100)) {
		if rc := m.Receive(Delivery{V: Version, Source: "sched", Grants: chunk}); rc.Error != nil {
			t.Fatal(rc.Error)
		}
	}
	last := map[string]string{}
	for _, g := range gs {
		last[g.User] = g.Team
	}
	now := t0.Add(40 * 24 * time.Hour)
	want := func(team string) []string {
		var ids []string
		for u, tm := range last {
			if tm == team {
				ids = append(ids, u)
			}
		}
		sort.Slice(ids, func(i, j int) bool {
			a, b := m.st.Users[ids[i]].Credit, m.st.Users[ids[j]].Credit
			return a > b || a == b && ids[i] < ids[j]
		})
		return ids
	}
	got := func(m *Machine, team string) []string {
		rows, n := m.TeamMembers(team, 0, 1000, now)
		var ids []string
		for _, s := range rows {
			if s.Credit != m.st.Users[s.ID].Credit {
				t.Errorf("%s in %s: credit %g, the account has %g", s.ID, team, s.Credit, m.st.Users[s.ID].Credit)
			}
			ids = append(ids, s.ID)
		}
		if n != len(rows) {
			t.Errorf("team %s: %d members counted, %d listed", team, n, len(rows))
		}
		return ids
	}
	var snap bytes.Buffer
	if err := m.Snapshot(&snap); err != nil {
		t.Fatal(err)
	}
	restored := New()
	if err := restored.Restore(&snap); err != nil {
		t.Fatal(err)
	}
	moved := 0
	for team := range 7 {
		id := fmt.Sprintf("t%d", team)
		w := want(id)
		if g := got(m, id); !reflect.DeepEqual(g, w) {
			t.Errorf("team %s lists %v, want %v", id, g, w)
		}
		if g := got(restored, id); !reflect.DeepEqual(g, w) {
			t.Errorf("restored, team %s lists %v, want %v", id, g, w)
		}
		moved += len(w)
	}
	if moved == 0 || moved == len(last) {
		t.Fatalf("%d of %d users in a team: the grants should leave some out of any", moved, len(last))
	}
	// A page from an offset.
	all := want("t1")
	if rows, _ := m.TeamMembers("t1", 2, 3, now); len(rows) != 3 || rows[0].ID != all[2] {
		t.Fatalf("t1 from 2: %+v, want from %v", rows, all[2:5])
	}
}

// TestRestoreSnapshotWithoutMembers restores a snapshot written before
// the teams' lists: it has no members, and the next grant lists its user.
func TestRestoreSnapshotWithoutMembers(t *testing.T) {
	m := New()
	g := Grant{ID: 1, Task: "t", Host: "h1", User: "u1", Team: "t1", Credit: 5, Sent: t0, At: t0.Add(time.Hour)}
	if rc := m.Receive(Delivery{V: Version, Source: "sched", Grants: []Grant{g}}); rc.Error != nil {
		t.Fatal(rc.Error)
	}
	snap := jsonSnapshot(t, m)
	old := strings.Replace(snap, `,"members":{"u1":"t1"}`, "", 1)
	if old == snap {
		t.Fatalf("no members in %s", snap)
	}
	r := New()
	if err := r.Restore(strings.NewReader(old)); err != nil {
		t.Fatal(err)
	}
	if rows, n := r.TeamMembers("t1", 0, 10, t0); n != 0 || len(rows) != 0 {
		t.Fatalf("members from an old snapshot: %+v", rows)
	}
	g.ID = 2
	if rc := r.Receive(Delivery{V: Version, Source: "sched", Grants: []Grant{g}}); rc.Error != nil {
		t.Fatal(rc.Error)
	}
	if rows, _ := r.TeamMembers("t1", 0, 10, t0); len(rows) != 1 || rows[0].ID != "u1" || rows[0].Credit != 10 {
		t.Fatalf("after a grant: %+v", rows)
	}
	bad := strings.Replace(snap, `"u1":"t1"`, `"u1":""`, 1)
	if err := New().Restore(strings.NewReader(bad)); err == nil {
		t.Fatal("a member of no team restored")
	}
}
