package daemon

import (
	"context"
	"crypto/ed25519"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/momonga-project/momonga/apps"
	"github.com/momonga-project/momonga/client/host"
	"github.com/momonga-project/momonga/client/idle"
	"github.com/momonga-project/momonga/client/prefs"
	"github.com/momonga-project/momonga/client/runner"
	"github.com/momonga-project/momonga/internal/wait"
	"github.com/momonga-project/momonga/project/admin"
	"github.com/momonga-project/momonga/project/sched"
	"github.com/momonga-project/momonga/project/server"
	wu "github.com/momonga-project/momonga/workunits"
)

// The test binary doubles as the daemons' worker.
const argWorker = "momonga-daemon-test-worker"

func TestMain(m *testing.M) {
	if len(os.Args) > 1 && os.Args[1] == argWorker {
		os.Exit(runner.WorkerMain(os.Stdin, os.Stdout))
	}
	if len(os.Args) > 1 && os.Args[1] == argFakeWorker {
		os.Exit(fakeWorker())
	}
	os.Exit(m.Run())
}

// events records a daemon's events for a test to wait on.
type events struct {
	mu   sync.Mutex
	list []Event
}

func (e *events) add(ev Event) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.list = append(e.list, ev)
}

func (e *events) find(kind string) (Event, bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, ev := range e.list {
		if ev.Kind == kind {
			return ev, true
		}
	}
	return Event{}, false
}

func waitEvent(t *testing.T, e *events, kind string, timeout time.Duration) Event {
	t.Helper()
	var ev Event
	found := func() bool {
		var ok bool
		ev, ok = e.find(kind)
		return ok
	}
	if !wait.Until(timeout, wait.Every, found) {
		e.mu.Lock()
		defer e.mu.Unlock()
		t.Fatalf("no %q event after %v: %+v", kind, timeout, e.list)
	}
	return ev
}

// TestStopCheckpointsAndAnotherHostResumes: a daemon that stops (as on
// Ctrl-C, or leaving the project) checkpoints its running task and ships the
// checkpoint before it goes; the task then goes to another host, which
// resumes it there and reports the result an undisturbed run gives.
func TestStopCheckpointsAndAnotherHostResumes(t *testing.T) {
	if testing.Short() {
		t.Skip("runs a project and two volunteers")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	scfg := server.Embedded(t.TempDir(), "127.0.0.1:0")
	scfg.TickInterval = 200 * time.Millisecond
	scfg.Sched = sched.Config{Lease: 2 * time.Second, Beat: 500 * time.Millisecond, Retry: 200 * time.Millisecond}
	scfg.Trust = server.Trust{Open: true, SigningKey: key(1).Public().(ed25519.PublicKey)}
	srv, err := server.Start(ctx, scfg)
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	worker := runner.Worker{Command: []string{exe, argWorker}}
	dataA := filepath.Join(t.TempDir(), "a")
	start := func(name string, ev *events) (context.CancelFunc, chan error) {
		data := dataA
		if name != "a" {
			data = filepath.Join(t.TempDir(), name)
		}
		// A host that computes whatever the person does: this test is about
		// checkpoints.
		dedicated := prefs.Defaults()
		dedicated.RunIfUserActive, dedicated.RunOnBattery, dedicated.SuspendCPUPercent = true, true, 0
		d, err := New(Config{DataDir: data, Project: srv.ClientURL(), CPUs: 1, Name: name,
			Worker: worker, Events: ev.add, CheckpointInterval: time.Hour,
			Prefs: &dedicated, Monitor: idle.Unwatched(), Control: "off",
			Benchmark: func(context.Context) (host.Benchmarks, error) { return host.Benchmarks{}, nil }})
		if err != nil {
			t.Fatal(err)
		}
		dctx, stop := context.WithCancel(ctx)
		done := make(chan error, 1)
		go func() { done <- d.Run(dctx) }()
		return stop, done
	}

	args := []string{"-0.743643887037151", "0.131825904205330", "2e-9", "64", "400", "3000"}
	adm, err := admin.Dial(ctx, srv.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	defer adm.Close()
	module, err := wu.PrepareModule(apps.MandelR)
	if err != nil {
		t.Fatal(err)
	}
	app, err := adm.AddApp(ctx, "mandelr", module, wu.SignApp(key(1), module).Encode(), wu.Policy{})
	if err != nil {
		t.Fatal(err)
	}
	var a events
	stopA, doneA := start("a", &a)
	if _, err := adm.Submit(ctx, wu.Submit{Batch: "b", App: app.Name, Replication: 1, Quorum: 1,
		Units: []wu.UnitSpec{{Args: args}}}); err != nil {
		t.Fatal(err)
	}
	waitEvent(t, &a, "started", time.Minute)
	// Once it has got somewhere, stop host a the way a user does.
	// (Slots are named by project and task.)
	progress := filepath.Join(dataA, "slots", "*", "root", "progress")
	wait.For(t, time.Minute, "the task's first progress", func() bool { m, _ := filepath.Glob(progress); return len(m) > 0 })
	stopA()
	if err := <-doneA; err != nil {
		t.Fatal(err)
	}
	shipped := waitEvent(t, &a, "checkpoint", time.Second)
	if shipped.Seq != 1 || shipped.Progress <= 0 {
		t.Fatalf("checkpoint shipped on stop: %+v", shipped)
	}
	waitEvent(t, &a, "stopped", time.Second)

	var b events
	stopB, doneB := start("b", &b)
	defer func() { stopB(); <-doneB }()
	resumed := waitEvent(t, &b, "resumed", time.Minute)
	if resumed.Seq != shipped.Seq || resumed.Progress != shipped.Progress {
		t.Fatalf("host b resumed from %+v; host a shipped %+v", resumed, shipped)
	}
	if rep := waitEvent(t, &b, "reported", 2*time.Minute); rep.Failed {
		t.Fatalf("report: %+v", rep)
	}

	// The undisturbed run, for comparison.
	dir := t.TempDir()
	modulePath := filepath.Join(dir, "m.wasm")
	if err := os.WriteFile(modulePath, module, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(filepath.Join(dir, "root"), 0o700); err != nil {
		t.Fatal(err)
	}
	res := runner.Run(ctx, runner.Spec{Module: modulePath, Name: "mandelr", Args: args, Dir: filepath.Join(dir, "root"), Output: filepath.Join(dir, "out")})
	if res.Failed {
		t.Fatal(res.Reason)
	}
	want, _ := os.ReadFile(filepath.Join(dir, "out"))
	results, err := adm.Results(ctx, "b")
	if err != nil || len(results.Units) != 1 || results.Units[0].State != wu.WorkUnitValid {
		t.Fatalf("results %+v %v", results, err)
	}
	if results.Units[0].Output != wu.HashOf(want) {
		t.Errorf("result %s after the move; undisturbed %s", results.Units[0].Output.Short(), wu.HashOf(want).Short())
	}
}
