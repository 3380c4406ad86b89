package server

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/anishathalye/porcupine"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/momonga-project/momonga/apps"
	"github.com/momonga-project/momonga/project/accounting"
	"github.com/momonga-project/momonga/project/admin"
	"github.com/momonga-project/momonga/project/sched"
	"github.com/momonga-project/momonga/project/sched/schedtest"
	"github.com/momonga-project/momonga/vpeer"
	"github.com/momonga-project/momonga/vpeer/jetlog"
	"github.com/momonga-project/momonga/vpeer/vpeertest"
	wu "github.com/momonga-project/momonga/workunits"
)

// Timing of the virtual peer in these tests: a member silent for a few
// heartbeats is replaced. On a busy machine a live member may be taken for
// dead now and then; that is a replacement too, and must be as harmless.
const (
	testHeartbeat = 30 * time.Millisecond
	testLapse     = 150 * time.Millisecond
)

// project is a server with members of its virtual peer, and a batch of
// single-replica work units queued.
type project struct {
	srv   *Server
	adm   *admin.Client
	tasks []string // in the order the scheduler hands them out
}

func startProject(t *testing.T, members, units int) *project {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cfg := Embedded(t.TempDir(), "127.0.0.1:0")
	// Long leases: no task is lost while the test runs, so the order in
	// which tasks are handed out is the queue's.
	cfg.Sched = sched.Config{Lease: time.Hour, Retry: 100 * time.Millisecond}
	cfg.Members = members
	cfg.Heartbeat, cfg.Lapse, cfg.TickInterval = testHeartbeat, testLapse, 50*time.Millisecond
	// Snapshots often, so that replacements restore one.
	cfg.SnapshotEvery, cfg.SnapshotSpacing = 40, -1
	cfg.Logger = vpeertest.TestLogger(t)
	cfg.Trust = Trust{Open: true, SigningKey: testKey.Public().(ed25519.PublicKey)}
	srv, err := Start(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	adm, err := admin.Dial(ctx, srv.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(adm.Close)
	if _, err := adm.AddApp(ctx, "primes", apps.Primes, signed(apps.Primes), wu.Policy{}); err != nil {
		t.Fatal(err)
	}
	if _, err := adm.PutBlob(ctx, output); err != nil {
		t.Fatal(err)
	}
	sub := wu.Submit{Batch: "b", App: "primes", Replication: 1, Quorum: 1, DeadlineSeconds: 3600}
	for i := range units {
		sub.Units = append(sub.Units, wu.UnitSpec{Args: []string{"0", fmt.Sprint(i)}})
	}
	ids, err := adm.Submit(ctx, sub)
	if err != nil {
		t.Fatal(err)
	}
	p := &project{srv: srv, adm: adm}
	for _, id := range ids {
		p.tasks = append(p.tasks, id+"_0")
	}
	return p
}

// joining is a spare process joining the project at url with room for one
// member, timed as the tests' members are.
func joining(t *testing.T, url string) Config {
	cfg := Joining(url)
	cfg.Heartbeat, cfg.Lapse, cfg.Logger = testHeartbeat, testLapse, vpeertest.TestLogger(t)
	return cfg
}

// output is what every simulated volunteer reports.
var output = []byte("42\n")

// newVolunteer is a simulated volunteer on a connection of its own to url.
func newVolunteer(t *testing.T, url string, id int, hist *schedtest.History) *schedtest.Volunteer {
	nc, err := nats.Connect(url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	request := func(ctx context.Context, subject string, data []byte) ([]byte, error) {
		msg, err := nc.RequestWithContext(ctx, subject, data)
		if err != nil {
			return nil, err
		}
		return msg.Data, nil
	}
	return schedtest.NewVolunteer(id, request, hist, output)
}

// TestMembersKilledExactlyOnceLinearizable is the virtual peer's
// acceptance test: three members and a spare process, simulated volunteers
// working through a batch while members are killed (their Run cancelled
// mid-stream, as a crash) and replaced by members that restore a snapshot
// and replay the log. Every request must be answered exactly once — no task
// assigned twice, no result lost — the history of work and result
// operations must be linearizable, and all members must end in the same
// state.
func TestMembersKilledExactlyOnceLinearizable(t *testing.T) {
	const volunteers, units = 16, 400
	p := startProject(t, 3, units)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	// A process joining with room for one member: a spare, until a slot
	// lapses and it wins the race for it.
	spare, err := Start(ctx, joining(t, p.srv.ClientURL()))
	if err != nil {
		t.Fatal(err)
	}
	defer spare.Close()
	groups := []*vpeer.Group{p.srv.Group(), spare.Group()}

	hist := schedtest.NewHistory()
	var (
		wg       sync.WaitGroup
		running  atomic.Int32
		mu       sync.Mutex
		assigned = map[string]string{} // task → host
	)
	for i := range volunteers {
		v := newVolunteer(t, p.srv.ClientURL(), i, hist)
		running.Add(1)
		wg.Go(func() {
			defer running.Add(-1)
			if err := v.Hello(ctx); err != nil {
				t.Error(err)
				return
			}
			for {
				out, err := v.Work(ctx)
				if err != nil {
					t.Error(err)
					return
				}
				if out.Err != "" {
					t.Errorf("%s: work refused: %s", v.Host, out.Err)
					return
				}
				if len(out.Tasks) == 0 {
					return // with no task ever lost, none will come
				}
				task := out.Tasks[0]
				mu.Lock()
				if other, dup := assigned[task]; dup {
					t.Errorf("task %s assigned to %s and to %s", task, other, v.Host)
				}
				assigned[task] = v.Host
				mu.Unlock()
				// Computing, for a while, so that members die mid-batch.
				select {
				case <-time.After(time.Duration(20+rand.IntN(30)) * time.Millisecond):
				case <-ctx.Done():
				}
				res, err := v.Result(ctx, task)
				if err != nil {
					t.Error(err)
					return
				}
				if res.Err != "" {
					t.Errorf("%s: result for %s refused: %s", v.Host, task, res.Err)
				}
			}
		})
	}

	// Kill a member whenever the group is whole again, the lease holder
	// every other time, until the volunteers are done.
	kills, leaders := 0, 0
	killed := map[string]bool{} // still listed until their Run has returned
	for running.Load() > 0 && ctx.Err() == nil {
		ms := slices.DeleteFunc(members(groups), func(m vpeer.MemberStatus) bool { return killed[m.ID] })
		leader := slices.IndexFunc(ms, func(m vpeer.MemberStatus) bool { return m.Leading })
		if len(ms) < 3 || leader < 0 || slices.ContainsFunc(ms, func(m vpeer.MemberStatus) bool { return !m.Ready }) {
			select { // polling the group
			case <-ctx.Done():
			case <-time.After(5 * time.Millisecond):
			}
			continue
		}
		victim := ms[rand.IntN(len(ms))]
		if kills%2 == 0 {
			victim = ms[leader]
		}
		for _, g := range groups {
			if g.Kill(victim.ID) {
				killed[victim.ID] = true
				kills++
				if victim.Leading {
					leaders++
				}
				t.Logf("killed %s (applied %d, lease holder %v)", victim.ID, victim.Applied, victim.Leading)
			}
		}
	}
	wg.Wait()
	if t.Failed() {
		return
	}
	if kills < 3 || leaders < 1 {
		t.Fatalf("only %d members killed, %d lease holders, while the volunteers worked: make the batch longer", kills, leaders)
	}

	// Exactly once: every task assigned once (checked above) and reported.
	if len(assigned) != units {
		t.Fatalf("%d of %d tasks assigned", len(assigned), units)
	}
	st, err := p.adm.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if b := st.Batches[0]; b.Valid != units || b.Tasks[wu.TaskReported] != units {
		t.Fatalf("batch after the run: %+v; want all %d units valid", b, units)
	}
	if res := schedtest.Check(t, p.tasks, hist.Operations()); res != porcupine.Ok {
		t.Fatalf("the history of %d operations is %s", len(hist.Operations()), res)
	}

	// All members end in one state, and replacements restored snapshots.
	g := sameState(t, p.srv)
	restored := 0
	for _, m := range g.Members {
		if m.Restored != nil {
			restored++
		}
	}
	t.Logf("%d kills (%d lease holders); at the end %d members, %d restored from a snapshot, agreeing at %d; spare runs %d",
		kills, leaders, len(g.Members), restored, g.Common, len(spare.Group().Members()))
	if restored == 0 {
		// The kills all came before a snapshot was stored (they are timed by
		// the load of the machine): now one surely is, so one more
		// replacement must restore it.
		waitStoredSnapshot(t, p.srv, g.Common)
		killedOne := false
		for _, gr := range groups {
			for _, m := range gr.Members() {
				if st := m.Status(); !killedOne && !st.Leading && gr.Kill(st.ID) {
					t.Logf("killed %s after the snapshot at %d was stored", st.ID, g.Common)
					killedOne = true
				}
			}
		}
		vpeertest.CheckFor(t, 20*time.Second, 20*time.Millisecond, func() error {
			for _, m := range sameState(t, p.srv).Members {
				if m.Restored != nil {
					return nil
				}
			}
			return errors.New("no member restored a snapshot")
		})
	}
}

// waitStoredSnapshot waits until the group has stored a snapshot at or past seq.
func waitStoredSnapshot(t *testing.T, srv *Server, seq uint64) {
	t.Helper()
	nc, err := nats.Connect(srv.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	vpeertest.CheckFor(t, 20*time.Second, 20*time.Millisecond, func() error {
		reports, err := jetlog.GatherStatus(ctx, nc, Group, 100*time.Millisecond)
		if err != nil {
			return err
		}
		for _, g := range vpeer.Summarize(reports) {
			if len(g.Snapshots) > 0 && g.Snapshots[len(g.Snapshots)-1].Seq >= seq {
				return nil
			}
		}
		return fmt.Errorf("no snapshot stored at %d yet", seq)
	})
}

// members lists the members of the groups' processes.
func members(groups []*vpeer.Group) []vpeer.MemberStatus {
	var ms []vpeer.MemberStatus
	for _, g := range groups {
		for _, m := range g.Members() {
			st := m.Status()
			st.ID = m.ID()
			ms = append(ms, st)
		}
	}
	return ms
}

// sameState asks for a snapshot point as `momonga-project vpeer snapshot`
// does and waits until every member's hash there is known and equal.
func sameState(t *testing.T, srv *Server) vpeer.GroupSummary {
	t.Helper()
	return sameStateOf(t, srv, Group)
}

// sameStateOf is sameState for the virtual peer named group.
func sameStateOf(t *testing.T, srv *Server, group string) vpeer.GroupSummary {
	t.Helper()
	nc, err := nats.Connect(srv.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	mark, err := jetlog.RequestSnapshot(ctx, nc, group)
	if err != nil {
		t.Fatal(err)
	}
	var g vpeer.GroupSummary
	vpeertest.CheckFor(t, 10*time.Second, 20*time.Millisecond, func() error {
		reports, err := jetlog.GatherStatus(ctx, nc, group, 100*time.Millisecond)
		if err != nil {
			return err
		}
		gs := vpeer.Summarize(reports)
		if len(gs) != 1 {
			return fmt.Errorf("%d groups answered", len(gs))
		}
		g = gs[0]
		switch {
		case len(g.Members) != 3:
			return fmt.Errorf("%d members", len(g.Members))
		case g.Common < mark:
			return fmt.Errorf("members' common snapshot point %d, waiting for %d", g.Common, mark)
		case !g.Agree:
			return errors.New("members disagree")
		}
		return nil
	})
	return g
}

// TestUndecodableRecordStopsNothing writes records into the scheduler's log
// that no gateway would: one whose header cannot be decoded, and one whose
// payload is not a command. Every member must skip the first and report it,
// answer nobody for either, change nothing, and go on serving.
func TestUndecodableRecordStopsNothing(t *testing.T) {
	p := startProject(t, 3, 4)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	nc, err := nats.Connect(p.srv.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	before := stateOf(t, p.srv)
	bad, err := js.PublishMsg(ctx, &nats.Msg{Subject: LogSubject, Header: nats.Header{jetlog.HeaderTick: {"yesterday"}}, Data: []byte("{}")})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := js.PublishMsg(ctx, &nats.Msg{Subject: LogSubject, Data: []byte("not a command")}); err != nil {
		t.Fatal(err)
	}
	// All members applied both, in one state (time moves on with ticks).
	after := sameState(t, p.srv)
	if stateOf(t, p.srv) != before {
		t.Fatal("records that are not commands changed the scheduler's state")
	}
	for _, m := range after.Members {
		if !slices.Contains(m.Skipped, bad.Sequence) {
			t.Fatalf("member %s reports %v skipped, not record %d", m.ID, m.Skipped, bad.Sequence)
		}
	}
	hist := schedtest.NewHistory()
	v := newVolunteer(t, p.srv.ClientURL(), 0, hist)
	if err := v.Hello(ctx); err != nil {
		t.Fatal(err)
	}
	if out, err := v.Work(ctx); err != nil || len(out.Tasks) != 1 {
		t.Fatalf("work after the bad records: %+v, %v", out, err)
	}
}

// TestJoinSecuredProject joins a secured project's virtual peer from
// another process, with the project's credentials, and is refused without.
func TestJoinSecuredProject(t *testing.T) {
	p := startSecure(t, Trust{})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := Start(ctx, Joining(p.url, nats.RootCAs(p.ca))); err == nil || !strings.Contains(err.Error(), AdminCredsFile) {
		t.Fatalf("join without credentials = %v, want a refusal naming %s", err, AdminCredsFile)
	}
	join := Joining(p.url, nats.UserCredentials(p.srv.AdminCreds()), nats.RootCAs(p.ca))
	join.Logger = vpeertest.TestLogger(t)
	spare, err := Start(ctx, join)
	if err != nil {
		t.Fatal(err)
	}
	defer spare.Close()
	nc, err := nats.Connect(p.url, nats.UserCredentials(p.srv.AdminCreds()), nats.RootCAs(p.ca))
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	vpeertest.CheckFor(t, 10*time.Second, 20*time.Millisecond, func() error {
		reports, err := jetlog.GatherStatus(ctx, nc, Group, 100*time.Millisecond)
		if err != nil {
			return err
		}
		if len(reports) != 2 {
			return fmt.Errorf("%d processes answered, want the server and the spare", len(reports))
		}
		return nil
	})
}

func acctOf(m *vpeer.Member) *accounting.Machine { return m.Machine().(*accounting.Machine) }

// query runs fn on the scheduler of a ready member of srv's process.
func query(srv *Server, fn func(*sched.Machine)) error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return srv.Group().Query(ctx, func(m *vpeer.Member) { fn(m.Machine().(*sched.Machine)) })
}
