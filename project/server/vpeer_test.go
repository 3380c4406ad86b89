package server

import (
	"context"
	"crypto/ed25519"
	"encoding/json"
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
	"github.com/momonga-project/momonga/project/admin"
	"github.com/momonga-project/momonga/project/sched"
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

func startProject(t *testing.T, members, units int, speculate bool) *project {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	srv, err := Start(ctx, Config{
		DataDir: t.TempDir(), NATSListen: "127.0.0.1:0",
		// Long leases: no task is lost while the test runs, so the order in
		// which tasks are handed out is the queue's.
		Sched:        sched.Config{Lease: time.Hour, Retry: 100 * time.Millisecond},
		Members:      members,
		Heartbeat:    testHeartbeat,
		Lapse:        testLapse,
		TickInterval: 50 * time.Millisecond,
		// Snapshots often, so that replacements restore one.
		SnapshotEvery: 40,
		Logger:        vpeertest.TestLogger(t),
		speculate:     speculate,
		Trust:         Trust{Open: true, SigningKey: testKey.Public().(ed25519.PublicKey)},
	})
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

// output is what every simulated volunteer reports.
var output = []byte("42\n")

// Operations of the history checked for linearizability.
type (
	opInput struct {
		Host string
		Op   string // wu.OpWork or wu.OpResult
		Task string // of a result
	}
	opOutput struct {
		Tasks []string // assigned by a work request
		Err   string   // the reply's error code
	}
)

// history records operations as volunteers see them: from the first
// attempt of a request to the reply that answered it.
type history struct {
	start time.Time
	mu    sync.Mutex
	ops   []porcupine.Operation
}

func (h *history) now() int64 { return int64(time.Since(h.start)) }

func (h *history) add(client int, in opInput, call int64, out opOutput) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.ops = append(h.ops, porcupine.Operation{ClientId: client, Input: in, Call: call, Output: out, Return: h.now()})
}

// volunteer is a simulated volunteer host speaking the real protocol on
// its own connection: hello, then numbered work and result requests, each
// retried with its number until answered.
type volunteer struct {
	t    *testing.T
	id   int
	host string
	nc   *nats.Conn
	hist *history
	seq  uint64
}

func newVolunteer(t *testing.T, url string, id int, hist *history) *volunteer {
	nc, err := nats.Connect(url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	return &volunteer{t: t, id: id, host: fmt.Sprintf("v%02d", id), nc: nc, hist: hist}
}

// request sends data on the volunteer's subject for op until a reply comes
// or ctx ends, and decodes the reply into out.
func (v *volunteer) request(ctx context.Context, op string, data []byte, out any) error {
	for {
		actx, cancel := context.WithTimeout(ctx, 2*time.Second)
		msg, err := v.nc.RequestWithContext(actx, wu.VolunteerSubject(v.host, op), data)
		cancel()
		if err == nil {
			return json.Unmarshal(msg.Data, out)
		}
		if ctx.Err() != nil {
			return fmt.Errorf("%s %s: no answer: %w", v.host, op, err)
		}
	}
}

func (v *volunteer) hello(ctx context.Context) error {
	var r wu.HelloReply
	if err := v.request(ctx, wu.OpHello, wu.Encode(wu.Hello{V: 1, Host: wu.HostInfo{Name: v.host, CPUs: 1}}), &r); err != nil {
		return err
	}
	if r.Error != nil {
		return r.Error
	}
	v.seq = r.NextSeq
	return nil
}

func errCode(e *wu.Error) string {
	if e == nil {
		return ""
	}
	return e.Code
}

// work asks for one task.
func (v *volunteer) work(ctx context.Context) (opOutput, error) {
	seq := v.seq
	v.seq++
	call := v.hist.now()
	var r wu.WorkReply
	if err := v.request(ctx, wu.OpWork, wu.Encode(wu.WorkRequest{V: 1, Seq: seq, Slots: 1}), &r); err != nil {
		return opOutput{}, err
	}
	out := opOutput{Err: errCode(r.Error)}
	for _, a := range r.Assignments {
		out.Tasks = append(out.Tasks, a.Task)
	}
	v.hist.add(v.id, opInput{Host: v.host, Op: wu.OpWork}, call, out)
	return out, nil
}

// result reports task done.
func (v *volunteer) result(ctx context.Context, task string) (opOutput, error) {
	seq := v.seq
	v.seq++
	call := v.hist.now()
	var r wu.Ack
	rep := wu.Report{V: 1, Seq: seq, Task: task, Outcome: wu.OutcomeSuccess, Output: wu.HashOf(output), OutputSize: int64(len(output)), CPUSeconds: 1}
	if err := v.request(ctx, wu.OpResult, wu.Encode(rep), &r); err != nil {
		return opOutput{}, err
	}
	out := opOutput{Err: errCode(r.Error)}
	v.hist.add(v.id, opInput{Host: v.host, Op: wu.OpResult, Task: task}, call, out)
	return out, nil
}

// schedModel is the scheduler's work and result operations done one at a
// time, for single-replica units and leases that never run out: work hands
// out the oldest unsent task, a result is accepted once, from the task's
// holder. The state is a string with one byte per task: '.' unsent, the
// holder's letter while assigned, upper case once reported.
func schedModel(tasks []string) porcupine.Model {
	index := make(map[string]int, len(tasks))
	for i, t := range tasks {
		index[t] = i
	}
	letter := func(host string) byte {
		var n int
		fmt.Sscanf(host, "v%d", &n)
		return byte('a' + n)
	}
	return porcupine.Model{
		Init: func() any { return strings.Repeat(".", len(tasks)) },
		Step: func(state, input, output any) (bool, any) {
			st, in, out := state.(string), input.(opInput), output.(opOutput)
			switch in.Op {
			case wu.OpWork:
				next := strings.IndexByte(st, '.')
				if next < 0 {
					return len(out.Tasks) == 0 && out.Err == "", st
				}
				if out.Err != "" || len(out.Tasks) != 1 || out.Tasks[0] != tasks[next] {
					return false, st
				}
				b := []byte(st)
				b[next] = letter(in.Host)
				return true, string(b)
			case wu.OpResult:
				i, ok := index[in.Task]
				if ok && st[i] == letter(in.Host) {
					if out.Err != "" {
						return false, st
					}
					b := []byte(st)
					b[i] -= 'a' - 'A'
					return true, string(b)
				}
				return out.Err == wu.CodeNotAssigned, st
			}
			return false, st
		},
		DescribeOperation: func(input, output any) string {
			return fmt.Sprintf("%+v → %+v", input, output)
		},
	}
}

func checkLinearizable(t *testing.T, tasks []string, ops []porcupine.Operation) porcupine.CheckResult {
	t.Helper()
	start := time.Now()
	res := porcupine.CheckOperationsTimeout(schedModel(tasks), ops, 20*time.Second)
	t.Logf("porcupine: %d operations, %s in %v", len(ops), res, time.Since(start).Round(time.Millisecond))
	return res
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
	p := startProject(t, 3, units, false)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	// A process joining with room for one member: a spare, until a slot
	// lapses and it wins the race for it.
	spare, err := Start(ctx, Config{Join: p.srv.ClientURL(), Members: 1, Heartbeat: testHeartbeat, Lapse: testLapse, Logger: vpeertest.TestLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	defer spare.Close()
	groups := []*vpeer.Group{p.srv.Group(), spare.Group()}

	hist := &history{start: time.Now()}
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
			if err := v.hello(ctx); err != nil {
				t.Error(err)
				return
			}
			for {
				out, err := v.work(ctx)
				if err != nil {
					t.Error(err)
					return
				}
				if out.Err != "" {
					t.Errorf("%s: work refused: %s", v.host, out.Err)
					return
				}
				if len(out.Tasks) == 0 {
					return // with no task ever lost, none will come
				}
				task := out.Tasks[0]
				mu.Lock()
				if other, dup := assigned[task]; dup {
					t.Errorf("task %s assigned to %s and to %s", task, other, v.host)
				}
				assigned[task] = v.host
				mu.Unlock()
				// Computing, for a while, so that members die mid-batch.
				select {
				case <-time.After(time.Duration(20+rand.IntN(30)) * time.Millisecond):
				case <-ctx.Done():
				}
				res, err := v.result(ctx, task)
				if err != nil {
					t.Error(err)
					return
				}
				if res.Err != "" {
					t.Errorf("%s: result for %s refused: %s", v.host, task, res.Err)
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
	if res := checkLinearizable(t, p.tasks, hist.ops); res != porcupine.Ok {
		t.Fatalf("the history of %d operations is %s", len(hist.ops), res)
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

// TestSpeculativeRepliesAreCaught runs volunteers against a gateway that
// answers from a copy of a member's state before the request is in the log
// — the mistake of replying before the entry is logged — and checks that
// the linearizability check of the test above refuses the history.
func TestSpeculativeRepliesAreCaught(t *testing.T) {
	const volunteers, rounds = 8, 4
	p := startProject(t, 3, volunteers*rounds, true)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	hist := &history{start: time.Now()}
	var vs []*volunteer
	for i := range volunteers {
		v := newVolunteer(t, p.srv.ClientURL(), i, hist)
		if err := v.hello(ctx); err != nil {
			t.Fatal(err)
		}
		vs = append(vs, v)
	}
	for range rounds {
		// All at once, as many volunteers do.
		var wg sync.WaitGroup
		for _, v := range vs {
			wg.Go(func() {
				out, err := v.work(ctx)
				if err != nil {
					t.Error(err)
					return
				}
				for _, task := range out.Tasks {
					if _, err := v.result(ctx, task); err != nil {
						t.Error(err)
					}
				}
			})
		}
		wg.Wait()
	}
	if t.Failed() {
		return
	}
	if res := checkLinearizable(t, p.tasks, hist.ops); res != porcupine.Illegal {
		t.Fatalf("the history of a gateway answering before logging is %s; want it caught as %s", res, porcupine.Illegal)
	}
}

// TestUndecodableRecordStopsNothing writes records into the scheduler's log
// that no gateway would: one whose header cannot be decoded, and one whose
// payload is not a command. Every member must skip the first and report it,
// answer nobody for either, change nothing, and go on serving.
func TestUndecodableRecordStopsNothing(t *testing.T) {
	p := startProject(t, 3, 4, false)
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
	hist := &history{start: time.Now()}
	v := newVolunteer(t, p.srv.ClientURL(), 0, hist)
	if err := v.hello(ctx); err != nil {
		t.Fatal(err)
	}
	if out, err := v.work(ctx); err != nil || len(out.Tasks) != 1 {
		t.Fatalf("work after the bad records: %+v, %v", out, err)
	}
}

// TestJoinSecuredProject joins a secured project's virtual peer from
// another process, with the project's credentials, and is refused without.
func TestJoinSecuredProject(t *testing.T) {
	p := startSecure(t, Trust{})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := Start(ctx, Config{Join: p.url, JoinOptions: []nats.Option{nats.RootCAs(p.ca)}}); err == nil || !strings.Contains(err.Error(), AdminCredsFile) {
		t.Fatalf("join without credentials = %v, want a refusal naming %s", err, AdminCredsFile)
	}
	spare, err := Start(ctx, Config{Join: p.url, JoinOptions: []nats.Option{nats.UserCredentials(p.srv.AdminCreds()), nats.RootCAs(p.ca)},
		Members: 1, Logger: vpeertest.TestLogger(t)})
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
