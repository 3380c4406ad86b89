// Package daemon is the volunteer client's long-running part (DESIGN §7): it
// is attached to one or more projects, measures the host, fetches work to
// keep a buffer, runs each task in its own sandboxed worker process when the
// preferences and the person allow, keeps the projects informed with
// heartbeats and reports results. Everything it must not lose lives in its
// data directory: the host identity, the state file (projects, queued
// tasks, benchmarks), the preferences and the finished reports.
//
// One loop decides (reconcile): which tasks hold the slots (client/plan),
// whether they may run (client/idle), which project to ask for work; each
// project has a goroutine for its network traffic, and each started task one
// for its worker process. Running tasks checkpoint and ship their
// checkpoints (checkpoint.go); each project's credentials and the key its
// apps must be signed with are its attachment (attachment.go).
package daemon

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"time"

	"github.com/momonga-project/momonga/client/control"
	"github.com/momonga-project/momonga/client/eventlog"
	"github.com/momonga-project/momonga/client/host"
	"github.com/momonga-project/momonga/client/idle"
	"github.com/momonga-project/momonga/client/prefs"
	"github.com/momonga-project/momonga/client/runner"
	"github.com/momonga-project/momonga/client/webui"
	"github.com/momonga-project/momonga/internal/atomicfile"
	wu "github.com/momonga-project/momonga/workunits"
)

// Config is how a daemon runs.
type Config struct {
	DataDir string
	// Project, if set, is attached at start (with the default share) unless
	// it already is: `momonga run --project URL`.
	Project string
	// CAFile is the TLS authority of Project, if it is not the one given
	// at attach or the system's.
	CAFile string
	CPUs   int           // most tasks at once; 0 = max_cpus_percent of the cores
	Name   string        // host name shown by projects; default the machine's
	Worker runner.Worker // how to start a worker process
	// Engines are the worker's engines, its default first: the daemon
	// learns for each app which of the first two runs it faster here
	// (engines.go). Found with the worker when Worker is not given; none:
	// every task on the worker's default.
	Engines []string
	// Logger is told what happens; nil = nothing is logged. Run also keeps
	// the event log in the data directory (client/eventlog).
	Logger *slog.Logger
	// LogLevel is the least level the event log keeps; nil = info.
	LogLevel slog.Leveler
	// Now is the clock every decision reads (leases, fetch back-offs, the
	// person's idle time, the CPU duty cycle, when to save the state);
	// nil = time.Now. Timers that only pace the loops stay on real time.
	Now func() time.Time
	// Events, if set, is told what the daemon does (for progress displays
	// and tests); it must not block.
	Events func(Event)
	// Prefs, if set, replaces prefs.json for this run (the demo computes
	// whatever the person does).
	Prefs *prefs.Prefs
	// Monitor watches the person, other programs and the power source;
	// nil = this platform's (idle.NewMonitor).
	Monitor Observer
	// Benchmark runs the benchmarks; nil = the worker command with
	// --benchmark, in a process of its own.
	Benchmark func(ctx context.Context) (host.Benchmarks, error)
	// Checkpointer is asked for a checkpoint of each task before the
	// daemon suspends it for the person; nil = the worker's own
	// (checkpoint.go).
	Checkpointer Checkpointer
	// CheckpointInterval is how often running tasks are checkpointed,
	// unless their work unit asks for another interval; 0 = the
	// preference checkpoint_seconds (checkpoint.go).
	CheckpointInterval time.Duration
	// StopGrace is how long a stopping daemon waits for its tasks to
	// checkpoint and for the checkpoints to reach the projects; default 20 s.
	StopGrace time.Duration
	// Control is the control API's loopback address: "" = 127.0.0.1 on a
	// free port, "off" = no API.
	Control string
	// TrimMemory makes an idle daemon give back the memory start-up and
	// tasks left behind, its executable's pages included. Only a daemon
	// that has its process to itself (`momonga run`) should: the pages are
	// the whole process's.
	TrimMemory bool
}

// Observer is what the daemon needs of idle.Monitor.
type Observer interface {
	Observe(now time.Time, ours []int) idle.Observation
}

// Checkpointer takes a checkpoint of a running task. Checkpoints belong to
// the runner (DESIGN §6); the daemon only says when: before it suspends a
// task because the person came back, and before it stops one.
type Checkpointer interface {
	Checkpoint(ctx context.Context, task string, proc *runner.Process) error
}

// checkpointBudget bounds the wait for checkpoints before a suspension, which
// must still happen within a second of the person's return.
const checkpointBudget = 400 * time.Millisecond

// Event is something the daemon did.
type Event struct {
	Kind    string // "assigned", "started", "resumed", "checkpoint", "finished", "reported", "aborted", "stopped", "suspended", "continued", "recovered"
	Task    string
	Project string
	Failed  bool
	Reason  string
	// For "started": the worker process. For "resumed" (from a checkpoint)
	// and "checkpoint": the checkpoint's number, the progress and the
	// task's CPU time in it.
	Pid        int     `json:",omitempty"`
	Seq        uint64  `json:",omitempty"`
	Progress   float64 `json:",omitempty"`
	CPUSeconds float64 `json:",omitempty"`
}

// DefaultShare is the resource share of a project attached without one.
const DefaultShare = 100

// Poll intervals of the decision loop: fast while tasks run, since they must
// stop within a second of the person's return; slow when there is nothing
// to stop, so that an idle client costs next to nothing.
const (
	pollRunning = 200 * time.Millisecond
	pollHolding = time.Second
	pollIdle    = 30 * time.Second
	// dutyPeriod is the cycle of the CPU usage limit: tasks run for
	// cpu_usage_limit per cent of each.
	dutyPeriod = time.Second
	// saveEvery bounds how often the state file is rewritten.
	saveEvery = 10 * time.Second
	// benchCheckEvery is how often the daemon looks whether the benchmarks
	// are stale.
	benchCheckEvery = 6 * time.Hour
	// trimAfter is how long the daemon waits, once nothing runs, before it
	// gives back the memory start-up and tasks left behind.
	trimAfter = 10 * time.Second
)

// Daemon is one running client.
type Daemon struct {
	cfg Config
	id  identity
	log *slog.Logger

	mu            sync.Mutex
	prefs         prefs.Prefs
	projects      map[string]*project // by URL
	tasks         map[string]*task    // by taskKey
	inputs        []wu.Hash           // input blobs in the cache, newest first (reported in work requests)
	gov           idle.Governor
	obs           idle.Observation
	decision      idle.Decision
	userSuspended bool
	info          host.Info
	bench         host.Benchmarks
	benchRun      *benchRun // the benchmarks running now, if they are
	dirty         bool
	savedAt       time.Time
	lastTick      time.Time
	nextObserve   time.Time
	nextBenchLook time.Time
	dutyOn        bool
	dutyUntil     time.Time
	disk          diskCheck
	busyAt        time.Time // last time a task had a worker, or the start
	trimmed       bool      // memory given back since then
	monitor       Observer
	closeMonitor  func()
	evl           *eventlog.Log
	engines       *engineChoice

	changesMu sync.Mutex
	changes   chan struct{} // closed at the next change (Changes)

	// reconcileMu lets one reconcile run at a time: the loop's, or one the
	// control API runs so that its answer shows the change.
	reconcileMu sync.Mutex
	runCtx      context.Context
	// workCtx outlives runCtx by StopGrace: tasks checkpoint, and the
	// projects' connections ship their checkpoints, while the daemon stops.
	workCtx context.Context
	// fatal has an error that stops the daemon: a project presents another
	// signing key than the one pinned for it.
	fatal chan error
	wg    sync.WaitGroup
	wake  chan struct{}
	// lock is the data directory's, held from New until Run returns or
	// Close.
	lock *dirLock
}

// identity is the host's id, kept in the data directory across runs.
type identity struct {
	ID   string `json:"id"`
	Name string `json:"name"`
}

// Run runs the daemon until ctx ends.
func Run(ctx context.Context, cfg Config) error {
	d, err := New(cfg)
	if err != nil {
		return err
	}
	return d.Run(ctx)
}

// warmWorkerFor is how long a worker process waits for another task after
// its own: long enough for a client's next short task, short enough that an
// idle client keeps no worker.
const warmWorkerFor = 30 * time.Second

// New prepares a daemon: its data directory, host identity, preferences and
// state.
func New(cfg Config) (*Daemon, error) {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Events == nil {
		cfg.Events = func(Event) {}
	}
	if cfg.StopGrace <= 0 {
		cfg.StopGrace = 20 * time.Second
	}
	if len(cfg.Worker.Command) == 0 {
		exe, err := os.Executable()
		if err != nil {
			return nil, fmt.Errorf("find own executable for workers: %w", err)
		}
		// The worker executable beside the client, with the faster engine,
		// when it is there and runs here; a worker stays a while after its
		// task for the next one, which then starts in a few milliseconds.
		cfg.Worker, cfg.Engines = runner.FindWorker(context.Background(), exe)
		cfg.Worker = cfg.Worker.Pooled(runtime.NumCPU(), warmWorkerFor)
	}
	if cfg.Benchmark == nil {
		command := append(append([]string(nil), cfg.Worker.Command...), "--benchmark", "--data", cfg.DataDir)
		cfg.Benchmark = func(ctx context.Context) (host.Benchmarks, error) {
			return host.RunBenchmarkCommand(ctx, command)
		}
	}
	if err := prepareDataDir(cfg.DataDir); err != nil {
		return nil, err
	}
	lock, err := lockDataDir(cfg.DataDir)
	if err != nil {
		return nil, err
	}
	d, err := newLocked(cfg)
	if err != nil {
		lock.release()
		return nil, err
	}
	d.lock = lock
	return d, nil
}

// newLocked prepares a daemon on a data directory whose lock it holds.
func newLocked(cfg Config) (*Daemon, error) {
	id, err := loadIdentity(cfg.DataDir, cfg.Name)
	if err != nil {
		return nil, err
	}
	d := &Daemon{
		cfg:      cfg,
		id:       id,
		engines:  newEngineChoice(cfg.Engines),
		log:      cfg.Logger.With("host", id.ID),
		projects: map[string]*project{},
		tasks:    map[string]*task{},
		wake:     make(chan struct{}, 1),
		fatal:    make(chan error, 1),
	}
	if cfg.Checkpointer == nil {
		d.cfg.Checkpointer = workerCheckpointer{}
	}
	if cfg.Prefs != nil {
		d.prefs = *cfg.Prefs
	} else if d.prefs, err = prefs.Load(cfg.DataDir); err != nil {
		return nil, err
	}
	d.info = host.Measure(cfg.DataDir)
	d.loadState()
	if err := d.loadAttachments(); err != nil {
		return nil, err
	}
	if cfg.Project != "" && d.projects[cfg.Project] == nil {
		if err := checkProjectURL(cfg.Project); err != nil {
			return nil, err
		}
		d.projects[cfg.Project] = newProject(cfg.Project, DefaultShare)
		d.dirty = true
	}
	d.adoptOldReports()
	return d, nil
}

// Close releases the data directory of a daemon that will not Run (Run
// releases it when it returns).
func (d *Daemon) Close() { d.lock.release() }

// HostID is the id projects know this host by.
func (d *Daemon) HostID() string { return d.id.ID }

func loadIdentity(dir, name string) (identity, error) {
	p := filepath.Join(dir, "host.json")
	var id identity
	b, err := os.ReadFile(p)
	if err == nil {
		if err := json.Unmarshal(b, &id); err != nil || !wu.ValidHostID(id.ID) {
			return id, fmt.Errorf("%s is corrupt (%v): remove it to register as a new host", p, err)
		}
		if name != "" {
			id.Name = name
		}
		return id, nil
	}
	if !errors.Is(err, os.ErrNotExist) {
		return id, fmt.Errorf("read host identity: %w", err)
	}
	var r [8]byte
	if _, err := rand.Read(r[:]); err != nil {
		return id, err
	}
	id.ID = "h" + hex.EncodeToString(r[:])
	id.Name = name
	if id.Name == "" {
		id.Name, _ = os.Hostname()
	}
	return id, atomicfile.Write(p, wu.Encode(id), 0o600)
}

func (d *Daemon) hostInfo() wu.HostInfo {
	d.mu.Lock()
	defer d.mu.Unlock()
	in, b := d.info, d.bench
	info := wu.HostInfo{
		Name: d.id.Name, OS: in.OS, Arch: in.Arch, CPUs: d.slotsLocked(), MemoryBytes: in.MemoryBytes,
		FLOPS: b.FLOPS, IOPS: b.IOPS, MemBytesPerSec: b.MemBytesPerSec, WasmOPS: b.WasmOPS, Engine: b.Engine,
		OSVersion: truncate(in.OSVersion, 256), CPUModel: truncate(in.CPUModel, 256), DiskFreeBytes: max(in.DiskFreeBytes, 0),
	}
	// Tasks run only part of the time: the project plans with that speed.
	if l := d.prefs.CPUUsageLimit; l > 0 && l < 100 {
		info.Throttle = l / 100
	}
	return info
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n]
	}
	return s
}

// Run measures the host, runs the benchmarks if they are stale, serves the
// control API, and computes until ctx ends. Running tasks are stopped when
// it returns and stay queued in the state file for the next run.
func (d *Daemon) Run(ctx context.Context) error {
	workCtx, stopWork := context.WithCancel(context.WithoutCancel(ctx))
	ctx, cancel := context.WithCancel(ctx)
	d.mu.Lock()
	d.runCtx, d.workCtx = ctx, workCtx
	d.mu.Unlock()
	if err := d.openEventLog(); err != nil {
		cancel()
		stopWork()
		return err
	}
	defer d.evl.Close()
	if d.cfg.Monitor != nil {
		d.monitor = d.cfg.Monitor
	} else {
		m := idle.NewMonitor(d.log)
		d.monitor, d.closeMonitor = m, m.Close
	}
	var ctl *control.Server
	if d.cfg.Control != "off" {
		var err error
		if ctl, err = control.Listen(d.cfg.DataDir, d.cfg.Control, d, d.log); err != nil {
			cancel()
			stopWork()
			if d.closeMonitor != nil {
				d.closeMonitor()
			}
			d.lock.release()
			return err
		}
		ctl.Handle("/", webui.New(d))
		d.wg.Add(1)
		go func() {
			defer d.wg.Done()
			if err := ctl.Serve(ctx); err != nil {
				d.log.Warn("control API stopped", "err", err)
			}
		}()
	}
	defer func() {
		cancel()
		d.stopAll()
		stopWork()
		d.wg.Wait()
		d.mu.Lock()
		d.saveStateLocked()
		d.mu.Unlock()
		if d.closeMonitor != nil {
			d.closeMonitor()
		}
		d.lock.release()
	}()
	if d.bench.Stale(d.info, d.now()) {
		d.runBenchmarks(ctx)
	}
	d.mu.Lock()
	d.busyAt = d.now()
	for _, p := range d.projects {
		d.startProjectLocked(p)
	}
	d.mu.Unlock()
	for {
		next := d.reconcile(d.now())
		t := time.NewTimer(next)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case err := <-d.fatal:
			t.Stop()
			return err
		case <-d.wake:
		case <-t.C:
		}
		t.Stop()
	}
}

// kick makes the decision loop run now.
func (d *Daemon) kick() {
	select {
	case d.wake <- struct{}{}:
	default:
	}
}

func (d *Daemon) now() time.Time { return d.cfg.Now() }

// benchRun is one run of the benchmarks, which whoever asks while it runs
// waits for.
type benchRun struct {
	done    chan struct{}
	b       host.Benchmarks
	err     error
	waiting int // callers waiting for it
}

// runBenchmarks runs the benchmarks and keeps their figures; if they are
// running already (as right after the start), it waits for that run and
// returns its figures. It does not hold the lock: the control API keeps
// answering meanwhile.
func (d *Daemon) runBenchmarks(ctx context.Context) (host.Benchmarks, error) {
	d.mu.Lock()
	if run := d.benchRun; run != nil {
		run.waiting++
		d.mu.Unlock()
		select {
		case <-run.done:
			return run.b, run.err
		case <-ctx.Done():
			return host.Benchmarks{}, ctx.Err()
		}
	}
	run := &benchRun{done: make(chan struct{})}
	d.benchRun = run
	d.changed()
	d.mu.Unlock()
	d.log.Info("benchmarks started")
	b, err := d.cfg.Benchmark(ctx)
	d.mu.Lock()
	defer d.mu.Unlock()
	defer close(run.done)
	d.benchRun = nil
	d.changed()
	if err != nil {
		if ctx.Err() == nil {
			d.log.Warn("benchmarks", "err", err)
		}
		run.err = err
		return b, err
	}
	d.info = host.Measure(d.cfg.DataDir)
	if b.Fingerprint == "" {
		b.Fingerprint = d.info.Fingerprint()
	}
	if b.At.IsZero() {
		b.At = d.now()
	}
	d.bench = b
	d.dirty = true
	d.log.Info("benchmarks", "flops", b.FLOPS, "iops", b.IOPS, "mem_bytes_per_sec", b.MemBytesPerSec, "wasm_ops", b.WasmOPS, "engine", b.Engine, "seconds", b.Seconds)
	run.b = b
	return b, nil
}

// slotsLocked is how many tasks may run at once.
func (d *Daemon) slotsLocked() int {
	n := int(float64(runtime.NumCPU()) * d.prefs.MaxCPUsPercent / 100)
	if d.cfg.CPUs > 0 {
		n = min(n, d.cfg.CPUs)
		if d.prefs.MaxCPUsPercent >= 100 {
			n = d.cfg.CPUs
		}
	}
	return max(n, 1)
}
