package reads

import (
	"context"
	"encoding/json"
	"log/slog"
	"strconv"
	"testing"
	"time"

	"github.com/momonga-project/momonga/project/accounting"
	"github.com/momonga-project/momonga/project/sched"
	"github.com/momonga-project/momonga/project/stats"
	"github.com/momonga-project/momonga/vpeer"
	"github.com/momonga-project/momonga/vpeer/fsm"
	wu "github.com/momonga-project/momonga/workunits"
)

// machinePeer serves a machine built beforehand from a member over an
// empty log.
type machinePeer struct{ m *vpeer.Member }

func (p machinePeer) Query(_ context.Context, fn func(*vpeer.Member)) error {
	p.m.Query(func() { fn(p.m) })
	return nil
}

func (p machinePeer) QueryLatest(ctx context.Context, fn func(*vpeer.Member)) error {
	return p.Query(ctx, fn)
}

func servePeer(t *testing.T, machine fsm.StateMachine) machinePeer {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	m := vpeer.NewMember(vpeer.MemberConfig{Log: vpeer.NewMemLog(), Machine: machine, Logger: slog.New(slog.DiscardHandler)})
	done := make(chan error, 1)
	go func() { done <- m.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	select {
	case <-m.Ready():
	case err := <-done:
		t.Fatal(err)
	}
	return machinePeer{m}
}

// TestTeamPageListsItsMembersByCredit: a large team's page lists its
// first members by credit from the accounting peer's list, as reading
// every member's credit does; a member who left is not listed; a user who
// joined and was not credited since is listed on a team's page that the
// list does not fill.
func TestTeamPageListsItsMembersByCredit(t *testing.T) {
	now := time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC)
	s := sched.New(sched.Config{Project: "p"})
	seq := uint64(0)
	apply := func(op string, body any) {
		t.Helper()
		seq++
		var ack wu.Ack
		if err := json.Unmarshal(s.Apply(fsm.Entry{Seq: seq, Time: now, Payload: wu.Encode(wu.Command{V: 1, Op: op, Host: "adm:test", Seq: seq, Body: wu.Encode(body)})}), &ack); err != nil || ack.Error != nil {
			t.Fatalf("%s: %v %v", op, err, ack.Error)
		}
	}
	seq++
	s.Apply(fsm.Entry{Seq: seq, Tick: true, Time: now})
	apply(wu.OpTeamAdd, wu.TeamAdd{V: 1, Name: "big"})
	apply(wu.OpTeamAdd, wu.TeamAdd{V: 1, Name: "small"})
	const n = 250
	a := accounting.New()
	d := accounting.Delivery{V: accounting.Version, Source: "sched"}
	for i := 1; i <= n+1; i++ {
		add := wu.UserAdd{V: 1, Name: "v" + strconv.Itoa(i), Email: strconv.Itoa(i) + "@example.org", KeyHash: wu.AccountKeyHash("k" + strconv.Itoa(i))}
		g := accounting.Grant{ID: uint64(i), Task: "t", Host: "h" + strconv.Itoa(i), User: "u" + strconv.Itoa(i), Credit: float64(i), Sent: now.Add(-time.Hour), At: now}
		if i <= n {
			add.Team, g.Team = "big", "t1"
		}
		apply(wu.OpUserAdd, add)
		d.Grants = append(d.Grants, g)
	}
	if rc := a.Receive(d); rc.Error != nil {
		t.Fatal(rc.Error)
	}
	src := Stats{Sched: servePeer(t, s), Acct: servePeer(t, a)}
	ctx := context.Background()
	check := func(team uint64, wantTotal int, want []int) {
		t.Helper()
		p, err := src.Team(ctx, team)
		if err != nil {
			t.Fatal(err)
		}
		if p.MembersTotal != wantTotal || len(p.Members) != len(want) {
			t.Fatalf("team %d: %d members of %d listed, want %d of %d", team, len(p.Members), p.MembersTotal, len(want), wantTotal)
		}
		var all []string
		_ = src.sched(ctx, func(m *sched.Machine) { all = m.TeamMembers(team) })
		exact, err := src.entries(ctx, stats.Users, all, stats.MaxMembers, p.Now)
		if err != nil {
			t.Fatal(err)
		}
		for i, e := range p.Members {
			if e.Ref.ID != uint64(want[i]) || e.Credit != float64(want[i]) || e != exact[i] {
				t.Fatalf("team %d, member %d: %+v, want user %d; read from every member: %+v", team, i, e, want[i], exact[i])
			}
		}
	}
	from := func(hi, count int) []int {
		var out []int
		for i := hi; len(out) < count; i-- {
			out = append(out, i)
		}
		return out
	}
	check(1, n, from(n, stats.MaxMembers))

	// The first member leaves; the last user joins the small team.
	empty, small := "", "small"
	apply(wu.OpUserSet, wu.UserSet{V: 1, User: "v" + strconv.Itoa(n), Team: &empty})
	apply(wu.OpUserSet, wu.UserSet{V: 1, User: "v" + strconv.Itoa(n+1), Team: &small})
	check(1, n-1, from(n-1, stats.MaxMembers))
	check(2, 1, []int{n + 1})
}
