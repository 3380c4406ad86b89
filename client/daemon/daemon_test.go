package daemon

import (
	"context"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/momonga-project/momonga/apps"
	"github.com/momonga-project/momonga/client/control"
	"github.com/momonga-project/momonga/client/host"
	"github.com/momonga-project/momonga/client/idle"
	"github.com/momonga-project/momonga/client/prefs"
	"github.com/momonga-project/momonga/client/runner"
	"github.com/momonga-project/momonga/internal/procstat"
	"github.com/momonga-project/momonga/internal/wait"
	"github.com/momonga-project/momonga/project/admin"
	"github.com/momonga-project/momonga/project/sched"
	"github.com/momonga-project/momonga/project/server"
	wu "github.com/momonga-project/momonga/workunits"
)

// The test binary doubles as a stand-in worker that speaks the worker
// protocol (a runner.Spec in, a runner.Result out) without WebAssembly, so
// that these tests are about the daemon and cost no compilation: a task
// with args "block" waits until it is killed or its daemon goes away; "out
// X" writes X as its output.
// (TestMain, in checkpoint_test.go, runs it.)
const argFakeWorker = "momonga-daemon-test-fake-worker"

func fakeWorker() int {
	dec := json.NewDecoder(os.Stdin)
	var spec runner.Spec
	if err := dec.Decode(&spec); err != nil {
		return 2
	}
	if len(spec.Args) > 0 && spec.Args[0] == "block" {
		_, _ = io.Copy(io.Discard, io.MultiReader(dec.Buffered(), os.Stdin))
		return 3
	}
	out := ""
	if len(spec.Args) > 1 {
		out = spec.Args[1]
	}
	if err := os.WriteFile(spec.Output, []byte(out), 0o600); err != nil {
		return 2
	}
	_ = json.NewEncoder(os.Stdout).Encode(runner.Result{})
	return 0
}

func testWorker(t *testing.T) runner.Worker {
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	return runner.Worker{Command: []string{exe, argFakeWorker}}
}

// project is a project server on loopback with the primes app published.
type testProject struct {
	srv *server.Server
	adm *admin.Client
	app string
}

func startProject(t *testing.T) *testProject {
	t.Helper()
	return startProjectWith(t, func(*server.Config) {})
}

// startProjectWith is startProject with its server's configuration changed.
func startProjectWith(t *testing.T, change func(*server.Config)) *testProject {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	scfg := server.Embedded(t.TempDir(), "127.0.0.1:0")
	scfg.Sched = sched.Config{Project: "test", Lease: time.Minute, Beat: time.Second, Retry: 200 * time.Millisecond}
	scfg.Trust = server.Trust{Open: true, SigningKey: key(1).Public().(ed25519.PublicKey)}
	change(&scfg)
	srv, err := server.Start(ctx, scfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	adm, err := admin.Dial(ctx, srv.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(adm.Close)
	module, err := wu.PrepareModule(apps.Primes)
	if err != nil {
		t.Fatal(err)
	}
	app, err := adm.AddApp(ctx, "primes", module, wu.SignApp(key(1), module).Encode(), wu.Policy{})
	if err != nil {
		t.Fatal(err)
	}
	return &testProject{srv: srv, adm: adm, app: app.Name}
}

func (p *testProject) submit(t *testing.T, batch string, limits wu.Limits, args ...[]string) {
	t.Helper()
	// Units with the same args are computed each, not shared: the tests
	// count tasks.
	sub := wu.Submit{Batch: batch, App: p.app, Replication: 1, Quorum: 1, Limits: limits, NoShare: true}
	for _, a := range args {
		sub.Units = append(sub.Units, wu.UnitSpec{Args: a})
	}
	if _, err := p.adm.Submit(context.Background(), sub); err != nil {
		t.Fatal(err)
	}
}

func (p *testProject) batch(t *testing.T, name string) wu.BatchStatus {
	t.Helper()
	for _, b := range p.srv.Status().Batches {
		if b.Name == name {
			return b
		}
	}
	return wu.BatchStatus{}
}

// fakeObserver is the person, other programs and the power source, as the
// test sets them.
type fakeObserver struct {
	mu        sync.Mutex
	lastInput time.Time
	otherCPU  float64
	onBattery bool
}

func (f *fakeObserver) Observe(now time.Time, _ []int) idle.Observation {
	f.mu.Lock()
	defer f.mu.Unlock()
	return idle.Observation{Now: now, LastInput: f.lastInput, OtherCPU: f.otherCPU, OnBattery: f.onBattery}
}

func (f *fakeObserver) set(fn func(f *fakeObserver)) {
	f.mu.Lock()
	defer f.mu.Unlock()
	fn(f)
}

// runDaemon runs a daemon until the test ends.
func runDaemon(t *testing.T, cfg Config) *Daemon {
	t.Helper()
	if cfg.DataDir == "" {
		cfg.DataDir = t.TempDir()
	}
	if len(cfg.Worker.Command) == 0 {
		cfg.Worker = testWorker(t)
	}
	if cfg.Benchmark == nil {
		cfg.Benchmark = func(context.Context) (host.Benchmarks, error) { return host.Benchmarks{FLOPS: 1e9}, nil }
	}
	d, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- d.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	})
	return d
}

// testClock is a daemon's clock that moves only when the test moves it.
type testClock struct {
	mu  sync.Mutex
	now time.Time
}

func newTestClock() *testClock { return &testClock{now: time.Now()} }

func (c *testClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *testClock) Advance(d time.Duration) time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
	return c.now
}

func workerPIDs(d *Daemon) []int {
	var pids []int
	for _, t := range d.Tasks() {
		if t.PID != 0 {
			pids = append(pids, t.PID)
		}
	}
	return pids
}

func quickPrefs() *prefs.Prefs {
	p := prefs.Defaults()
	p.IdleMinutes = 0.05 // 3 s
	return &p
}

func TestSuspendOnInputWithinASecondResumeAfterIdleTime(t *testing.T) {
	proj := startProject(t)
	proj.submit(t, "b", wu.Limits{MemoryBytes: 16 << 20}, []string{"block"}, []string{"block"})
	clock := newTestClock()
	obs := &fakeObserver{lastInput: clock.Now().Add(-time.Hour)}
	d := runDaemon(t, Config{Project: proj.srv.ClientURL(), CPUs: 2, Monitor: obs, Prefs: quickPrefs(), Control: "off", Now: clock.Now})

	wait.For(t, 20*time.Second, "two running tasks", func() bool { return procstat.NoneStopped(workerPIDs(d)) && len(workerPIDs(d)) == 2 })
	pids := workerPIDs(d)
	// The daemon's clock stands still: the loop alone, on its real poll
	// interval, must notice the input.
	input := time.Now()
	obs.set(func(f *fakeObserver) { f.lastInput = clock.Now() })
	wait.For(t, 5*time.Second, "tasks stopped", func() bool { return procstat.AllStopped(pids) })
	took := time.Since(input)
	t.Logf("input to all tasks stopped: %v", took)
	if took > time.Second {
		t.Errorf("tasks stopped %v after input, want within 1 s", took)
	}
	if s := d.Status(); s.Computing || !s.UserActive || !strings.Contains(s.Reason, "in use") || s.Suspended != 2 {
		t.Errorf("status while in use: %+v", s)
	}
	// They resume once the idle time (3 s) has passed, not before.
	d.reconcile(clock.Advance(2900 * time.Millisecond))
	if s := d.Status(); s.Computing || s.Suspended != 2 {
		t.Errorf("2.9 s after the input: %+v, want both tasks still suspended", s)
	}
	d.reconcile(clock.Advance(100 * time.Millisecond))
	if s := d.Status(); !s.Computing || s.Running != 2 {
		t.Errorf("3 s after the input: %+v, want both tasks running", s)
	}
	wait.For(t, 5*time.Second, "tasks resumed", func() bool { return procstat.NoneStopped(pids) })
}

func TestSuspendForOtherProgramsBatteryAndUser(t *testing.T) {
	proj := startProject(t)
	proj.submit(t, "b", wu.Limits{MemoryBytes: 16 << 20}, []string{"block"})
	obs := &fakeObserver{}
	clock := newTestClock()
	d := runDaemon(t, Config{Project: proj.srv.ClientURL(), CPUs: 1, Monitor: obs, Prefs: quickPrefs(), Now: clock.Now})
	wait.For(t, 20*time.Second, "a running task", func() bool { return procstat.NoneStopped(workerPIDs(d)) })
	pids := workerPIDs(d)

	obs.set(func(f *fakeObserver) { f.otherCPU = 0.5 })
	wait.For(t, 5*time.Second, "suspended for other programs", func() bool { return procstat.AllStopped(pids) })
	if r := d.Status().Reason; !strings.Contains(r, "other programs use 50%") {
		t.Errorf("reason %q", r)
	}
	obs.set(func(f *fakeObserver) { f.otherCPU = 0; f.onBattery = true })
	wait.For(t, 5*time.Second, "suspended on battery", func() bool { return strings.Contains(d.Status().Reason, "on battery") })
	obs.set(func(f *fakeObserver) { f.onBattery = false })

	// `momonga suspend` through the control API holds them whatever else.
	c, err := control.Dial(d.cfg.DataDir)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	st, err := c.Suspend(ctx)
	if err != nil || !st.UserSuspended || st.Computing {
		t.Fatalf("suspend: %+v, %v", st, err)
	}
	if _, err := c.Resume(ctx); err != nil {
		t.Fatal(err)
	}
	// Suspended for other programs' CPU, the task stays so until their use
	// has been calm for idle.CPUCalm.
	if s := d.Status(); s.Computing || !strings.Contains(s.Reason, "other programs") {
		t.Errorf("resumed by the volunteer while other programs' CPU was not yet calm: %+v", s)
	}
	d.reconcile(clock.Advance(idle.CPUCalm))
	wait.For(t, 5*time.Second, "resumed", func() bool { return procstat.NoneStopped(pids) })

	// A wrong token is refused.
	addr, _ := os.ReadFile(filepath.Join(d.cfg.DataDir, control.AddrFile))
	if _, err := control.NewClient(strings.TrimSpace(string(addr)), "wrong").Suspend(ctx); err == nil {
		t.Error("suspend with a wrong token accepted")
	}
	if d.Status().UserSuspended {
		t.Error("suspended by a caller without the token")
	}
	// An out-of-range preference is refused with its range.
	if _, err := c.SetPref(ctx, "suspend_cpu_percent", "250"); err == nil || !strings.Contains(err.Error(), "from 0 to 100") {
		t.Errorf("out of range preference: %v", err)
	}
}

func TestCPUUsageLimitByDutyCycle(t *testing.T) {
	proj := startProject(t)
	proj.submit(t, "b", wu.Limits{MemoryBytes: 16 << 20}, []string{"block"})
	p := quickPrefs()
	p.CPUUsageLimit = 40
	clock := newTestClock()
	d := runDaemon(t, Config{Project: proj.srv.ClientURL(), CPUs: 1, Monitor: &fakeObserver{}, Prefs: p, Control: "off", Now: clock.Now})
	wait.For(t, 20*time.Second, "a worker", func() bool { return len(workerPIDs(d)) == 1 })
	pid := workerPIDs(d)[0]
	// Three whole cycles of one second in steps of 100 ms: the task is
	// stopped in 6 steps of every 10, whatever the phase, and its worker
	// follows each decision.
	var stopped int
	for range 30 {
		d.reconcile(clock.Advance(100 * time.Millisecond))
		tasks := d.Tasks()
		if len(tasks) != 1 || tasks[0].PID != pid {
			t.Fatalf("tasks %+v, want the one with worker %d", tasks, pid)
		}
		if tasks[0].State == "suspended" {
			stopped++
			wait.For(t, 5*time.Second, "the worker stopped", func() bool { return procstat.State(pid) == 'T' })
		} else {
			wait.For(t, 5*time.Second, "the worker running", func() bool { return procstat.NoneStopped([]int{pid}) })
		}
	}
	if stopped != 18 {
		t.Errorf("stopped in %d of 30 steps of 100 ms with cpu_usage_limit 40, want 18", stopped)
	}
}

func TestMemoryAndDiskLimitsRefuseTasks(t *testing.T) {
	proj := startProject(t)
	p := quickPrefs()
	p.RAMIdlePercent = 1
	in := host.Measure(t.TempDir())
	big := min(in.MemoryBytes/50, wu.MaxMemoryBytes) // 2% of the memory: over the 1% budget
	proj.submit(t, "big", wu.Limits{MemoryBytes: big}, []string{"block"})
	clock := newTestClock()
	d := runDaemon(t, Config{Project: proj.srv.ClientURL(), CPUs: 1, Monitor: &fakeObserver{}, Prefs: p, Control: "off", Now: clock.Now})
	wait.For(t, 20*time.Second, "the task assigned", func() bool { return len(d.Tasks()) == 1 })
	for range 5 {
		d.reconcile(clock.Advance(time.Minute))
		if tk := d.Tasks()[0]; tk.State != "queued" {
			t.Fatalf("a task over the memory budget started: %+v", tk)
		}
	}
	if _, err := d.SetPref("ram_idle_percent", "90"); err != nil {
		t.Fatal(err)
	}
	wait.For(t, 5*time.Second, "the task started within a larger budget", func() bool { return len(workerPIDs(d)) == 1 })

	// With no free disk allowed, no work is fetched from a project that
	// has some and is ready to be asked.
	p2 := quickPrefs()
	p2.DiskMinFreeGB = 1e6
	proj.submit(t, "more", wu.Limits{MemoryBytes: 16 << 20}, []string{"out", "x"})
	clock2 := newTestClock()
	d2 := runDaemon(t, Config{Project: proj.srv.ClientURL(), CPUs: 1, Monitor: &fakeObserver{}, Prefs: p2, Control: "off", Now: clock2.Now})
	wait.For(t, 10*time.Second, "registered", func() bool { ps := d2.Projects(); return len(ps) == 1 && ps[0].Connected })
	for range 5 {
		d2.reconcile(clock2.Advance(time.Minute))
		if n, asking := len(d2.Tasks()), d2.fetching(); n != 0 || asking {
			t.Fatalf("with no disk to spare: %d tasks fetched, asking for more: %v", n, asking)
		}
	}
}

// fetching reports whether a work request to any project is under way.
func (d *Daemon) fetching() bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, p := range d.projects {
		if p.fetching {
			return true
		}
	}
	return false
}

func TestSeveralProjects(t *testing.T) {
	a, b := startProject(t), startProject(t)
	for i, p := range []*testProject{a, b} {
		var units [][]string
		for j := range 3 {
			units = append(units, []string{"out", fmt.Sprintf("p%d-%d", i, j)})
		}
		p.submit(t, "b", wu.Limits{MemoryBytes: 16 << 20}, units...)
	}
	var mu sync.Mutex
	reported := map[string]int{}
	d := runDaemon(t, Config{Project: a.srv.ClientURL(), CPUs: 2, Monitor: &fakeObserver{}, Prefs: quickPrefs(), Control: "off",
		Events: func(e Event) {
			if e.Kind == "reported" && !e.Failed {
				mu.Lock()
				reported[e.Project]++
				mu.Unlock()
			}
		}})
	if err := d.Attach(context.Background(), b.srv.ClientURL(), 300); err != nil {
		t.Fatal(err)
	}
	if err := d.Attach(context.Background(), "http://example.org", 0); err == nil {
		t.Error("attached an http URL")
	}
	if !wait.Until(60*time.Second, wait.Every, func() bool { return a.batch(t, "b").Done() && b.batch(t, "b").Done() }) {
		t.Fatalf("batches not done: %+v, %+v\ntasks %+v\nprojects %+v\nstatus %+v", a.batch(t, "b"), b.batch(t, "b"), d.Tasks(), d.Projects(), d.Status())
	}
	// The project may judge the last result before its reply reaches the
	// client.
	wait.For(t, 10*time.Second, "three reports to each project", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return reported[a.srv.ClientURL()] == 3 && reported[b.srv.ClientURL()] == 3
	})
	ps := d.Projects()
	if len(ps) != 2 || ps[0].Share+ps[1].Share != DefaultShare+300 {
		t.Errorf("projects %+v", ps)
	}
	if err := d.Detach(b.srv.ClientURL()); err != nil || len(d.Projects()) != 1 {
		t.Errorf("detach: %v, %+v", err, d.Projects())
	}
}

// TestCorruptStateRecovers damages the state file of a client that holds a
// finished result for a project: the client notices at start, sets the file
// aside, and still delivers the result.
func TestCorruptStateRecovers(t *testing.T) {
	proj := startProject(t)
	proj.submit(t, "b", wu.Limits{MemoryBytes: 16 << 20}, []string{"out", "42"})
	dir := t.TempDir()
	first, err := New(Config{DataDir: dir, Worker: testWorker(t)})
	if err != nil {
		t.Fatal(err)
	}
	// Take the task by hand, as this host, and finish it on disk as a client
	// that crashed before reporting would have.
	rep := wu.WorkReply{Assignments: takeByHand(t, proj, first, 1)}
	out := []byte("42")
	if err := first.keepBlob(wu.HashOf(out), out); err != nil {
		t.Fatal(err)
	}
	r := savedReport{Project: proj.srv.ClientURL(), Report: wu.Report{V: 1, Task: rep.Assignments[0].Task, Outcome: wu.OutcomeSuccess,
		Output: wu.HashOf(out), OutputSize: 2}}
	if err := first.saveReport(r); err != nil {
		t.Fatal(err)
	}
	first.Close()
	os.WriteFile(filepath.Join(dir, stateFile), []byte(`{"sum":"00","state":{"v":1,"projects":[{"url":"nats://nowhere:1"`), 0o600)

	var recovered sync.Once
	saw := make(chan string, 1)
	runDaemon(t, Config{DataDir: dir, Monitor: &fakeObserver{}, Control: "off", Events: func(e Event) {
		if e.Kind == "recovered" {
			recovered.Do(func() { saw <- e.Reason })
		}
	}})
	select {
	case reason := <-saw:
		t.Logf("recovered: %s", reason)
	default:
		t.Error("no recovery event for a damaged state file")
	}
	if aside, _ := filepath.Glob(filepath.Join(dir, stateFile+".corrupt-*")); len(aside) != 1 {
		t.Errorf("damaged file not set aside: %v", aside)
	}
	wait.For(t, 20*time.Second, "the finished result accepted", func() bool { return proj.batch(t, "b").Valid == 1 })
}

// takeByHand asks proj for n tasks as d's host, on a connection of its
// own: the project gives them to the host, and d never hears of it, as if
// the reply had been lost or the client had crashed.
func takeByHand(t *testing.T, proj *testProject, d *Daemon, n int) []wu.Assignment {
	t.Helper()
	c, err := dial(proj.srv.ClientURL(), d.HostID(), "h", slog.New(slog.DiscardHandler), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.close()
	ctx := context.Background()
	if _, err := c.hello(ctx, wu.HostInfo{Name: "h", CPUs: n}); err != nil {
		t.Fatal(err)
	}
	var rep wu.WorkReply
	if err := c.numbered(ctx, wu.OpWork, func(seq uint64) any { return wu.WorkRequest{V: 1, Seq: seq, Slots: n} }, &rep, 1); err != nil || len(rep.Assignments) != n {
		t.Fatalf("work: %+v, %v", rep, err)
	}
	return rep.Assignments
}

// TestLostWorkReplyIsSentAgain: the tasks the project gave this host in a
// reply that never reached it come back at its first work request, long
// before their leases (a minute) run out; a task it finished and has not
// reported yet is not sent again.
func TestLostWorkReplyIsSentAgain(t *testing.T) {
	proj := startProject(t)
	proj.submit(t, "b", wu.Limits{MemoryBytes: 16 << 20}, []string{"out", "1"}, []string{"out", "2"}, []string{"out", "3"})
	dir := t.TempDir()
	first, err := New(Config{DataDir: dir, Worker: testWorker(t)})
	if err != nil {
		t.Fatal(err)
	}
	rep := wu.WorkReply{Assignments: takeByHand(t, proj, first, 3)}
	// The first task is finished on disk, its report not sent; the reply
	// with the other two is lost.
	done := rep.Assignments[0]
	out := []byte(done.Args[1])
	if err := first.keepBlob(wu.HashOf(out), out); err != nil {
		t.Fatal(err)
	}
	if err := first.saveReport(savedReport{Project: proj.srv.ClientURL(), Report: wu.Report{V: 1, Task: done.Task, Outcome: wu.OutcomeSuccess,
		Output: wu.HashOf(out), OutputSize: int64(len(out))}}); err != nil {
		t.Fatal(err)
	}
	first.Close()

	var mu sync.Mutex
	var assigned []string
	runDaemon(t, Config{DataDir: dir, Project: proj.srv.ClientURL(), CPUs: 2, Monitor: &fakeObserver{}, Prefs: quickPrefs(), Control: "off",
		Events: func(e Event) {
			if e.Kind == "assigned" {
				mu.Lock()
				assigned = append(assigned, e.Task)
				mu.Unlock()
			}
		}})
	wait.For(t, 20*time.Second, "the three results accepted", func() bool { return proj.batch(t, "b").Valid == 3 })
	mu.Lock()
	defer mu.Unlock()
	slices.Sort(assigned)
	if want := []string{rep.Assignments[1].Task, rep.Assignments[2].Task}; !slices.Equal(assigned, want) {
		t.Errorf("tasks received: %v, want the two of the lost reply, %v", assigned, want)
	}
	if st := proj.batch(t, "b"); st.Tasks[wu.TaskReported] != 3 || len(st.Tasks) != 1 {
		t.Errorf("tasks: %v, want the three given first, reported", st.Tasks)
	}
}

// TestFetchesWorkSubmittedLater: a client that found no work asks again
// when the project's retry time (doubled on each empty reply) has passed,
// even with nothing else to wake it.
func TestFetchesWorkSubmittedLater(t *testing.T) {
	proj := startProjectWith(t, func(c *server.Config) { c.NoPush = true }) // the fallback, for a host that hears no push
	clock := newTestClock()
	d := runDaemon(t, Config{Project: proj.srv.ClientURL(), CPUs: 1, Monitor: &fakeObserver{}, Prefs: quickPrefs(), Control: "off", Now: clock.Now})
	var next time.Time
	wait.For(t, 10*time.Second, "an empty work reply", func() bool {
		ps := d.Projects()
		ok := len(ps) == 1 && ps[0].Connected && !ps[0].NextFetch.IsZero()
		if ok {
			next = ps[0].NextFetch
		}
		return ok
	})
	proj.submit(t, "late", wu.Limits{MemoryBytes: 16 << 20}, []string{"out", "x"})
	// Nothing is asked before the retry time...
	d.reconcile(clock.Advance(next.Sub(clock.Now()) - time.Millisecond))
	if d.fetching() || len(d.Tasks()) != 0 {
		t.Fatalf("asked for work before the retry time: fetching %v, tasks %+v", d.fetching(), d.Tasks())
	}
	// ...and once it has passed, the loop asks by itself: nothing kicks it.
	clock.Advance(time.Millisecond)
	wait.For(t, 10*time.Second, "the late batch done", func() bool { return proj.batch(t, "late").Done() })
}

// TestUnreadableReportIsForgotten: a saved report that can no longer be read
// is dropped, and its task is no longer kept as finished here, so that the
// next work request does not name it and the project gives it again; a task
// still being saved is kept.
func TestUnreadableReportIsForgotten(t *testing.T) {
	dir := t.TempDir()
	const url = "nats://127.0.0.1:4"
	first, err := New(Config{DataDir: dir, Worker: testWorker(t)})
	if err != nil {
		t.Fatal(err)
	}
	r := savedReport{Project: url, Report: wu.Report{V: 1, Task: "b-1.0", Outcome: wu.OutcomeFailure, Reason: "x"}}
	if err := first.saveReport(r); err != nil {
		t.Fatal(err)
	}
	first.Close()

	d, err := New(Config{DataDir: dir, Worker: testWorker(t)})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	p := d.projects[url]
	if p == nil || !p.unreported["b-1.0"] {
		t.Fatalf("project %+v: want the saved report's task kept as finished here", p)
	}
	p.unreported["b-2.0"] = true // finished, its report not on disk yet
	path := d.reportPath(r)
	if err := os.WriteFile(path, []byte(`{"task": "b-1.0", "outc`), 0o600); err != nil {
		t.Fatal(err)
	}
	d.sendReports(t.Context(), p, nil) // nothing readable to send: no connection needed
	if _, err := os.Stat(path); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("the unreadable report is still there: %v", err)
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if p.unreported["b-1.0"] || !p.unreported["b-2.0"] {
		t.Errorf("kept as finished here: %v, want b-2.0 alone", p.unreported)
	}
}

// countingHandler counts the log records whose message is msg.
type countingHandler struct {
	msg string
	n   *atomic.Int32
}

func (h countingHandler) Enabled(context.Context, slog.Level) bool { return true }
func (h countingHandler) Handle(_ context.Context, r slog.Record) error {
	if r.Message == h.msg {
		h.n.Add(1)
	}
	return nil
}
func (h countingHandler) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h countingHandler) WithGroup(string) slog.Handler      { return h }

// TestSaysHelloAgainAfterReconnecting: a host whose connection to the
// project came back (through the same server or another) says hello again,
// so that the project knows which server it is on and the host has the
// reconnect spread for the project's hosts as they are now.
func TestSaysHelloAgainAfterReconnecting(t *testing.T) {
	proj := startProject(t)
	var hellos atomic.Int32
	d := runDaemon(t, Config{Project: proj.srv.ClientURL(), CPUs: 1, Monitor: &fakeObserver{}, Prefs: quickPrefs(), Control: "off",
		Logger: slog.New(countingHandler{msg: "registered", n: &hellos})})
	wait.For(t, 10*time.Second, "the first hello", func() bool { return hellos.Load() == 1 })
	var c *conn
	d.mu.Lock()
	for _, p := range d.projects {
		p.connMu.Lock()
		c = p.c
		p.connMu.Unlock()
	}
	d.mu.Unlock()
	if err := c.nc.ForceReconnect(); err != nil {
		t.Fatal(err)
	}
	wait.For(t, 10*time.Second, "a hello after reconnecting", func() bool { return hellos.Load() == 2 })
}
