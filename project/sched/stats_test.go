package sched

import (
	"bytes"
	"crypto/md5"
	"encoding/hex"
	"strings"
	"testing"
	"time"

	"github.com/momonga-project/momonga/vpeer/fsm"
	wu "github.com/momonga-project/momonga/workunits"
)

// scanTasks counts the tasks by state the slow way.
func scanTasks(m *Machine) map[wu.TaskState]int {
	out := map[wu.TaskState]int{}
	for _, t := range m.st.Tasks {
		out[t.State]++
	}
	return out
}

func checkCensus(t *testing.T, m *Machine) {
	t.Helper()
	want := scanTasks(m)
	got := m.Census().Tasks
	if len(got) != len(want) {
		t.Fatalf("tasks by state %v, a scan counts %v", got, want)
	}
	for s, n := range want {
		if got[s] != n {
			t.Fatalf("tasks by state %v, a scan counts %v", got, want)
		}
	}
}

// TestStatsSideFollowsTheWork: numbers, task counts by state, what hosts
// hold and returned, and a batch's progress follow a batch through every
// kind of transition, and a restored scheduler derives the same.
func TestStatsSideFollowsTheWork(t *testing.T) {
	h := newHarness(t)
	h.addUser("ann", "")
	h.must(h.req("adm:test", wu.OpTeamAdd, wu.TeamAdd{V: 1, Name: "Crunchers", Founder: "ann", Country: "Japan", Type: 6}, nil))
	h.addUser("bob", "Crunchers")
	h.addUser("carl", "")
	a, b := h.attachHost("ann", 1), h.attachHost("bob", 2)
	c := h.attachHost("carl", 3)
	h.setup(6, 2, 2)
	checkCensus(t, h.m)
	as, bs := h.work(a, 3), h.work(b, 3)
	h.work(c, 1)
	checkCensus(t, h.m)
	if v, _ := h.m.Host(1); len(v.Running) != 3 || v.User == nil || v.User.Name != "ann" || v.Label.ID != a {
		t.Fatalf("host 1: %+v", v)
	}
	h.tick(10 * time.Second)
	for i := range 3 {
		h.must(h.report(a, as[i].Task, "7"))
		h.must(h.report(b, bs[i].Task, "7"))
	}
	h.tick(40 * time.Second) // c's task is lost
	checkCensus(t, h.m)
	v, _ := h.m.Host(1)
	if len(v.Running) != 0 || len(v.Recent) != 3 || v.Recent[0].ID != as[2].Task || v.Turnaround != 10 {
		t.Fatalf("host 1 after reporting: running %d, recent %+v, turnaround %g", len(v.Running), v.Recent, v.Turnaround)
	}
	bv, valid, ok := h.m.Batch("b1", 10)
	if !ok || bv.Valid != 3 || len(valid) != 3 || bv.Created != t0 || bv.Finished[len(bv.Finished)-1] != 3 {
		t.Fatalf("batch: %+v, %d valid results", bv, len(valid))
	}
	c0 := h.m.Census()
	if c0.Assigned != 7 || c0.Reported != 6 || c0.Hosts != 3 || c0.Users != 3 || c0.Teams != 1 {
		t.Fatalf("census %+v", c0)
	}
	tv, _ := h.m.Team(1)
	if tv.Country != "Japan" || tv.Type != 6 || tv.Members != 2 || len(h.m.TeamMembers(1)) != 2 || tv.Founder.Name != "ann" {
		t.Fatalf("team: %+v", tv)
	}

	r := New(Config{})
	if err := r.Restore(bytes.NewReader(h.snapshot())); err != nil {
		t.Fatal(err)
	}
	checkCensus(t, r)
	rv, _ := r.Host(1)
	if len(rv.Recent) != 3 || rv.Turnaround != v.Turnaround || r.Census().Assigned != 7 {
		t.Fatalf("restored host 1: %+v", rv)
	}
	rb, _, _ := r.Batch("b1", 10)
	if rb.Created != bv.Created || rb.Finished[len(rb.Finished)-1] != 3 {
		t.Fatalf("restored batch: %+v", rb)
	}
	if tv2, _ := r.Team(1); tv2.Members != 2 {
		t.Fatalf("restored team members: %+v", tv2.Members)
	}
}

func TestUsersChooseTeamsCountryAndExportsFromTheirHosts(t *testing.T) {
	h := newHarness(t)
	h.must(h.req("adm:test", wu.OpTeamAdd, wu.TeamAdd{V: 1, Name: "crunchers"}, nil))
	h.must(h.req("adm:test", wu.OpTeamAdd, wu.TeamAdd{V: 1, Name: "other"}, nil))
	h.addUser("ann", "other")
	a := h.attachHost("ann", 1)
	team, country, no := "crunchers", "Norway", false
	// Unnumbered, as `momonga team join` sends it.
	h.must(h.reqSeq(a, 0, wu.OpAccount, wu.UserSet{V: 1, Team: &team, Country: &country, StatsExport: &no}, nil))
	u, _ := h.m.User(1)
	if u.Team == nil || u.Team.Name != "crunchers" || u.Country != "Norway" || len(u.Hosts) != 1 {
		t.Fatalf("user after account: %+v", u)
	}
	if tv, _ := h.m.Team(2); tv.Members != 0 || len(h.m.TeamMembers(2)) != 0 {
		t.Fatalf("the old team keeps its member: %+v", tv.Members)
	}
	recs, _ := records(h.m, 1, 1, 10)
	if len(recs) != 1 || !recs[0].NoExport || recs[0].TeamNum != 1 {
		t.Fatalf("user record: %+v", recs)
	}
	if e := h.reqSeq(a, 0, wu.OpAccount, wu.UserSet{V: 1, User: "ann", Country: &country}, nil); e == nil || e.Code != wu.CodeForbidden {
		t.Fatalf("a host naming a user: %v", e)
	}
	missing := "nope"
	if e := h.reqSeq(a, 0, wu.OpAccount, wu.UserSet{V: 1, Team: &missing}, nil); e == nil || e.Code != wu.CodeNotFound {
		t.Fatalf("an unknown team: %v", e)
	}
	if e := h.req("nobody", wu.OpAccount, wu.UserSet{V: 1, Country: &country}, nil); e == nil {
		t.Fatal("an unknown host changed settings")
	}
	leave := ""
	h.must(h.req("adm:test", wu.OpUserSet, wu.UserSet{V: 1, User: "ann", Team: &leave}, nil))
	if u, _ := h.m.User(1); u.Team != nil {
		t.Fatalf("user still in %+v", u.Team)
	}
}

// TestExportRecordsCarryBOINCsIDs: integer ids, cpid = md5(cross-project
// id + e-mail) for users, md5(host cpid + e-mail) for hosts.
func TestExportRecordsCarryBOINCsIDs(t *testing.T) {
	h := newHarness(t)
	xp := strings.Repeat("ab", 16)
	h.must(h.req("adm:test", wu.OpUserAdd, wu.UserAdd{V: 1, Name: "ann", Email: "ann@example.org", KeyHash: wu.AccountKeyHash("key-ann-0123456789"), CrossProjectID: xp}, nil))
	h.addUser("bob", "")
	h.attachHost("ann", 1)
	h.hello("open-host")
	users, next := records(h.m, 1, 1, 10)
	sum := md5.Sum([]byte(xp + "ann@example.org"))
	if len(users) != 2 || next != 0 || users[0].Num != 1 || users[0].CPID != hex.EncodeToString(sum[:]) {
		t.Fatalf("users: %+v", users)
	}
	if users[1].CPID == users[0].CPID || len(users[1].CPID) != 32 {
		t.Fatalf("bob's cpid %q", users[1].CPID)
	}
	hosts, _ := records(h.m, 0, 1, 1)
	if len(hosts) != 1 || hosts[0].Num != 1 || hosts[0].UserNum != 1 || len(hosts[0].CPID) != 32 {
		t.Fatalf("hosts: %+v", hosts)
	}
	more, next := records(h.m, 0, 2, 1)
	if len(more) != 1 || more[0].ID != "open-host" || more[0].UserNum != 0 || next != 0 {
		t.Fatalf("second host: %+v, next %d", more, next)
	}
}

func TestSearchFindsNamesByPrefixIgnoringCase(t *testing.T) {
	h := newHarness(t)
	for _, n := range []string{"alice", "Alfred", "bob", "ALBERT", "al"} {
		h.addUser(n, "")
	}
	var got []string
	for _, l := range h.m.Search(1, "AL", 10) {
		got = append(got, l.Name)
	}
	if strings.Join(got, ",") != "al,ALBERT,Alfred,alice" {
		t.Fatalf("search al: %v", got)
	}
	if got := h.m.Search(1, "alf", 1); len(got) != 1 || got[0].Name != "Alfred" {
		t.Fatalf("search alf: %v", got)
	}
	if got := h.m.Search(2, "al", 5); len(got) != 0 {
		t.Fatalf("teams: %v", got)
	}
}

// TestSnapshotWithoutNumbersGetsThem: a snapshot from before numbers
// restores with users and teams numbered as their ids and hosts in the
// order they came.
func TestSnapshotWithoutNumbersGetsThem(t *testing.T) {
	h := newHarness(t)
	h.addUser("ann", "")
	h.hello("zed")
	h.tick(time.Second)
	h.hello("abe")
	for _, hs := range h.m.st.Hosts {
		hs.Num = 0
	}
	for _, u := range h.m.st.Users {
		u.Num, u.XProject = 0, ""
	}
	h.m.st.HostNums = 0
	r := New(Config{})
	if err := r.Restore(bytes.NewReader(h.snapshot())); err != nil {
		t.Fatal(err)
	}
	if v, ok := r.Host(1); !ok || v.ID != "zed" {
		t.Fatalf("host 1: %+v", v)
	}
	if v, ok := r.Host(2); !ok || v.ID != "abe" {
		t.Fatalf("host 2: %+v", v)
	}
	if u, ok := r.User(1); !ok || u.Name != "ann" {
		t.Fatalf("user 1: %+v", u)
	}
	recs, _ := records(r, 1, 1, 1)
	if len(recs[0].CPID) != 32 {
		t.Fatalf("cpid of a user from before cross-project ids: %q", recs[0].CPID)
	}
	r.Apply(fsm.Entry{Seq: 1000, Time: h.now, Payload: wu.Encode(wu.Command{V: 1, Op: wu.OpHello, Host: "new", Body: wu.Encode(wu.Hello{V: 1})})})
	if v, ok := r.Host(3); !ok || v.ID != "new" {
		t.Fatalf("a host after the restore: %+v", v)
	}
}

func records(m *Machine, kind int, from uint64, n int) ([]Record, uint64) {
	var out []Record
	next := m.Records(kind, from, n, func() *Record {
		out = append(out, Record{})
		return &out[len(out)-1]
	})
	return out, next
}

// TestWhatAHostHoldsStaysBounded: a host that takes and reports task after
// task does not make each assignment cost more (the index of what hosts
// hold is pruned as it grows), and its page lists exactly what it holds.
func TestWhatAHostHoldsStaysBounded(t *testing.T) {
	h := newHarness(t)
	h.m.cfg.MaxTasksPerCore = -1 // as in bench dispatch: a host holds what it asks for
	h.addUser("ann", "")
	a := h.attachHost("ann", 1)
	h.setup(200, 1, 1)
	var kept []wu.Assignment
	for i := range 100 {
		as := h.work(a, 1)
		if len(as) != 1 {
			t.Fatalf("round %d: %d tasks", i, len(as))
		}
		if i%10 == 0 {
			kept = append(kept, as[0]) // held on
			continue
		}
		h.must(h.report(a, as[0].Task, "7"))
	}
	if n := len(h.m.six.holding[a].ids); n > 2*len(kept)+16 {
		t.Fatalf("the index lists %d tasks for a host holding %d", n, len(kept))
	}
	v, _ := h.m.Host(1)
	if len(v.Running) != len(kept) {
		t.Fatalf("host page: %d running, want %d", len(v.Running), len(kept))
	}
	for i, r := range v.Running {
		if r.ID != kept[i].Task {
			t.Fatalf("running[%d] = %s, want %s (in the order given)", i, r.ID, kept[i].Task)
		}
	}
}
