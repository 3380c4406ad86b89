// Package daemon is the volunteer client's long-running part (DESIGN §7): it
// registers the host with a project, fetches work, runs each task in its own
// sandboxed worker process, keeps the project informed with heartbeats and
// reports results. Everything it must not lose lives in its data directory.
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
	"sort"
	"sync"
	"time"

	"github.com/momonga-project/momonga/client/runner"
	wu "github.com/momonga-project/momonga/workunits"
)

// Config is how a daemon runs.
type Config struct {
	DataDir string
	Project string        // NATS URL of the project; default the one attached to
	CAFile  string        // TLS authority of the project; default the one given at attach
	CPUs    int           // tasks run at once; 0 = every core
	Name    string        // host name shown by the project; default the machine's
	Worker  runner.Worker // how to start a worker process
	Logger  *slog.Logger
	// Events, if set, is told what the daemon does (for progress displays
	// and tests); it must not block.
	Events func(Event)
}

// Event is something the daemon did.
type Event struct {
	Kind   string // "assigned", "finished", "reported", "aborted"
	Task   string
	Failed bool
	Reason string
}

// Daemon is one running client.
type Daemon struct {
	cfg  Config
	id   identity
	c    *conn
	log  *slog.Logger
	beat time.Duration

	att   Attachment // the project, as attached or first met
	flops float64    // benchmark, floating-point operations per second

	mu      sync.Mutex
	running map[string]*slot
	wg      sync.WaitGroup
	done    chan string // task ids as their slot frees up
}

type slot struct {
	a       wu.Assignment
	proc    *runner.Process
	aborted bool
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

// New prepares a daemon: its data directory and its host identity.
func New(cfg Config) (*Daemon, error) {
	if cfg.CPUs <= 0 {
		cfg.CPUs = runtime.NumCPU()
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Events == nil {
		cfg.Events = func(Event) {}
	}
	if len(cfg.Worker.Command) == 0 {
		exe, err := os.Executable()
		if err != nil {
			return nil, fmt.Errorf("find own executable for workers: %w", err)
		}
		cfg.Worker.Command = []string{exe, "worker"}
	}
	att, attached, err := LoadAttachment(cfg.DataDir)
	if err != nil {
		return nil, err
	}
	if cfg.Project == "" {
		cfg.Project = att.URL
	}
	if cfg.Project == "" {
		return nil, errors.New("no project: attach this host first (momonga attach URL --account-key KEY), or name an open project's URL with --project")
	}
	for _, dir := range []string{"blobs", "slots", "reports", "cache"} {
		if err := os.MkdirAll(filepath.Join(cfg.DataDir, dir), 0o700); err != nil {
			return nil, fmt.Errorf("data directory: %w", err)
		}
	}
	id, err := loadIdentity(cfg.DataDir, cfg.Name)
	if err != nil {
		return nil, err
	}
	if attached && att.Host != id.ID {
		return nil, fmt.Errorf("%s names host %s but the attachment is for %s: attach again", filepath.Join(cfg.DataDir, "host.json"), id.ID, att.Host)
	}
	att.Host = id.ID
	return &Daemon{cfg: cfg, id: id, att: att, flops: measureFLOPS(), log: cfg.Logger.With("host", id.ID), running: map[string]*slot{}, done: make(chan string, cfg.CPUs)}, nil
}

// HostID is the id the project knows this host by.
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
	return id, writeFileAtomic(p, wu.Encode(id))
}

// writeFileAtomic replaces p with b so that a crash leaves the old or the
// new content, never a mix.
func writeFileAtomic(p string, b []byte) error {
	tmp, err := os.CreateTemp(filepath.Dir(p), ".tmp-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(b); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), p)
}

func (d *Daemon) hostInfo() wu.HostInfo {
	return wu.HostInfo{Name: d.id.Name, OS: runtime.GOOS, Arch: runtime.GOARCH, CPUs: d.cfg.CPUs, FLOPS: d.flops}
}

// Run connects, registers and computes until ctx ends. Running tasks are
// stopped when it returns; their leases run out and the project gives them
// to other hosts.
func (d *Daemon) Run(ctx context.Context) error {
	opts, err := d.connectOptions()
	if err != nil {
		return err
	}
	c, err := dial(d.cfg.Project, d.id.ID, d.id.Name, d.log, opts...)
	if err != nil {
		return err
	}
	d.c = c
	defer c.close()
	hello, err := c.hello(ctx, d.hostInfo())
	if err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return fmt.Errorf("register with project: %w", err)
	}
	if err := d.pin(hello.SigningKey); err != nil {
		return err
	}
	d.beat = time.Duration(hello.BeatSeconds * float64(time.Second))
	if d.beat <= 0 {
		d.beat = 10 * time.Second
	}
	d.log.Info("registered", "project", hello.Project, "beat", d.beat)

	ctx, cancel := context.WithCancel(ctx)
	defer func() {
		cancel()
		d.killAll()
		d.wg.Wait()
	}()
	d.wg.Add(1)
	go func() {
		defer d.wg.Done()
		d.beatLoop(ctx)
	}()
	d.sendPendingReports(ctx)
	return d.workLoop(ctx)
}

func (d *Daemon) workLoop(ctx context.Context) error {
	wait := time.Duration(0)
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-d.done:
			wait = 0
			continue
		case <-time.After(wait):
		}
		free := d.cfg.CPUs - d.runningCount()
		if free <= 0 {
			wait = time.Hour // until a slot frees up
			continue
		}
		var rep wu.WorkReply
		err := d.c.numbered(ctx, wu.OpWork, func(seq uint64) any {
			return wu.WorkRequest{V: wu.WireVersion, Seq: seq, Slots: free}
		}, &rep, 3)
		switch {
		case ctx.Err() != nil:
			return nil
		case wu.ErrorCode(err) == wu.CodeNotFound:
			// The project forgot this host (a new project data directory):
			// register again.
			if _, err := d.c.hello(ctx, d.hostInfo()); err != nil && ctx.Err() == nil {
				d.log.Warn("register again", "err", err)
			}
			wait = time.Second
			continue
		case err != nil:
			d.log.Warn("work request", "err", err)
			wait = 5 * time.Second
			continue
		}
		for _, a := range rep.Assignments {
			d.start(ctx, a)
		}
		wait = 0
		if len(rep.Assignments) < free {
			wait = time.Duration(rep.RetrySeconds * float64(time.Second))
			if wait <= 0 {
				wait = 5 * time.Second
			}
		}
	}
}

func (d *Daemon) runningCount() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return len(d.running)
}

func (d *Daemon) start(ctx context.Context, a wu.Assignment) {
	s := &slot{a: a}
	d.mu.Lock()
	d.running[a.Task] = s
	d.mu.Unlock()
	d.cfg.Events(Event{Kind: "assigned", Task: a.Task})
	d.wg.Add(1)
	go func() {
		defer d.wg.Done()
		d.runTask(ctx, s)
		d.mu.Lock()
		delete(d.running, a.Task)
		d.mu.Unlock()
		select {
		case d.done <- a.Task:
		default:
		}
	}()
}

// runTask fetches what a task needs, runs it in a worker and reports it.
func (d *Daemon) runTask(ctx context.Context, s *slot) {
	a := s.a
	dir := filepath.Join(d.cfg.DataDir, "slots", a.Task)
	defer os.RemoveAll(dir)
	report := wu.Report{V: wu.WireVersion, Task: a.Task, Outcome: wu.OutcomeFailure}
	res, output, err := d.execute(ctx, s, dir)
	switch {
	case ctx.Err() != nil:
		return // stopping: the task goes back to the project when its lease runs out
	case s.isAborted(&d.mu):
		d.cfg.Events(Event{Kind: "aborted", Task: a.Task})
		return
	case err != nil:
		report.Reason = err.Error()
	case res.Failed:
		report.ExitCode, report.Reason, report.CPUSeconds = res.ExitCode, res.Reason, res.CPUSeconds
	default:
		report.ExitCode, report.CPUSeconds = res.ExitCode, res.CPUSeconds
		report.Outcome = wu.OutcomeSuccess
		report.Output = wu.HashOf(output)
		report.OutputSize = int64(len(output))
		if err := d.keepBlob(report.Output, output); err != nil {
			report.Outcome, report.Reason = wu.OutcomeFailure, "keep output: "+err.Error()
		}
	}
	d.cfg.Events(Event{Kind: "finished", Task: a.Task, Failed: report.Outcome != wu.OutcomeSuccess, Reason: report.Reason})
	// The report is on disk before it is sent, so a crash between finishing
	// and reporting loses nothing.
	if err := writeFileAtomic(d.reportPath(a.Task), wu.Encode(report)); err != nil {
		d.log.Warn("save report", "task", a.Task, "err", err)
	}
	d.sendReport(ctx, report)
}

func (s *slot) isAborted(mu *sync.Mutex) bool {
	mu.Lock()
	defer mu.Unlock()
	return s.aborted
}

func (d *Daemon) execute(ctx context.Context, s *slot, dir string) (runner.Result, []byte, error) {
	a := s.a
	module, err := d.blob(ctx, a.AppHash, a.AppSize)
	if err != nil {
		return runner.Result{}, nil, fmt.Errorf("fetch app %s: %w", a.App, err)
	}
	if err := d.verifyModule(a, module); err != nil {
		d.log.Error("app refused", "err", err)
		return runner.Result{}, nil, err
	}
	if err := wu.CheckModule(module); err != nil {
		return runner.Result{}, nil, fmt.Errorf("app %s: %w", a.App, err)
	}
	spec := runner.Spec{
		Module:   d.blobPath(a.AppHash),
		Name:     a.App,
		Args:     a.Args,
		Dir:      filepath.Join(dir, "root"),
		Output:   filepath.Join(dir, "stdout"),
		Limits:   a.Limits.WithDefaults(),
		CacheDir: filepath.Join(d.cfg.DataDir, "cache"),
	}
	if a.Stdin != "" {
		if _, err := d.blob(ctx, a.Stdin, wu.MaxOutputBytes); err != nil {
			return runner.Result{}, nil, fmt.Errorf("fetch input: %w", err)
		}
		spec.Stdin = d.blobPath(a.Stdin)
	}
	if err := os.MkdirAll(spec.Dir, 0o700); err != nil {
		return runner.Result{}, nil, err
	}
	proc, err := d.cfg.Worker.Start(ctx, spec)
	if err != nil {
		return runner.Result{}, nil, fmt.Errorf("start worker: %w", err)
	}
	d.mu.Lock()
	s.proc = proc
	aborted := s.aborted
	d.mu.Unlock()
	if aborted {
		_ = proc.Kill()
	}
	res := proc.Wait()
	if res.Failed {
		return res, nil, nil
	}
	out, err := os.ReadFile(spec.Output)
	if err != nil {
		return res, nil, fmt.Errorf("read output: %w", err)
	}
	return res, out, nil
}

func (d *Daemon) blobPath(h wu.Hash) string { return filepath.Join(d.cfg.DataDir, "blobs", string(h)) }

// blob returns a blob from the cache, downloading it first if need be.
func (d *Daemon) blob(ctx context.Context, h wu.Hash, maxBytes int64) ([]byte, error) {
	if !h.Valid() {
		return nil, fmt.Errorf("malformed blob hash %q", h)
	}
	if b, err := os.ReadFile(d.blobPath(h)); err == nil && wu.HashOf(b) == h {
		return b, nil
	}
	b, err := d.c.download(ctx, h, maxBytes)
	if err != nil {
		return nil, err
	}
	return b, d.keepBlob(h, b)
}

func (d *Daemon) keepBlob(h wu.Hash, b []byte) error { return writeFileAtomic(d.blobPath(h), b) }

func (d *Daemon) reportPath(task string) string {
	return filepath.Join(d.cfg.DataDir, "reports", task+".json")
}

// sendReport uploads a successful task's output, then reports the task,
// retrying until the project answers or the daemon stops.
func (d *Daemon) sendReport(ctx context.Context, r wu.Report) {
	if r.Outcome == wu.OutcomeSuccess {
		out, err := os.ReadFile(d.blobPath(r.Output))
		if err == nil && wu.HashOf(out) != r.Output {
			err = errors.New("output changed on disk")
		}
		if err == nil {
			_, err = d.c.upload(ctx, out)
		}
		if err != nil {
			if ctx.Err() == nil {
				d.log.Warn("upload result", "task", r.Task, "err", err)
			}
			return
		}
	}
	err := d.c.numbered(ctx, wu.OpResult, func(seq uint64) any { r.Seq = seq; return r }, &wu.Ack{}, -1)
	if ctx.Err() != nil {
		return
	}
	if err != nil {
		// The project refused the report for good (the task is no longer
		// ours, for example); keeping it would only resend it forever.
		d.log.Warn("report refused", "task", r.Task, "err", err)
	}
	os.Remove(d.reportPath(r.Task))
	d.cfg.Events(Event{Kind: "reported", Task: r.Task, Failed: err != nil || r.Outcome != wu.OutcomeSuccess, Reason: r.Reason})
}

// sendPendingReports sends the reports a previous run finished but did not
// get to send.
func (d *Daemon) sendPendingReports(ctx context.Context) {
	paths, _ := filepath.Glob(filepath.Join(d.cfg.DataDir, "reports", "*.json"))
	sort.Strings(paths)
	for _, p := range paths {
		b, err := os.ReadFile(p)
		var r wu.Report
		if err == nil {
			r, err = wu.Decode[wu.Report](b)
		}
		if err != nil {
			d.log.Warn("unreadable saved report, dropped", "file", p, "err", err)
			os.Remove(p)
			continue
		}
		d.sendReport(ctx, r)
	}
}

func (d *Daemon) beatLoop(ctx context.Context) {
	t := time.NewTicker(d.beat)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		d.mu.Lock()
		var tasks []wu.TaskProgress
		for id := range d.running {
			tasks = append(tasks, wu.TaskProgress{Task: id})
		}
		d.mu.Unlock()
		if len(tasks) == 0 {
			continue
		}
		sort.Slice(tasks, func(i, j int) bool { return tasks[i].Task < tasks[j].Task })
		var rep wu.BeatReply
		err := d.c.numbered(ctx, wu.OpBeat, func(seq uint64) any {
			return wu.Beat{V: wu.WireVersion, Seq: seq, Tasks: tasks}
		}, &rep, 2)
		if err != nil {
			if ctx.Err() == nil {
				d.log.Warn("heartbeat", "err", err)
			}
			continue
		}
		for _, id := range rep.Abort {
			d.abort(id)
		}
	}
}

// abort stops a task the project no longer wants from this host.
func (d *Daemon) abort(id string) {
	d.mu.Lock()
	var proc *runner.Process
	if s := d.running[id]; s != nil {
		s.aborted = true
		proc = s.proc
	}
	d.mu.Unlock()
	if proc != nil {
		d.log.Info("aborting task at the project's request", "task", id)
		_ = proc.Kill()
	}
}

func (d *Daemon) killAll() {
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, s := range d.running {
		if s.proc != nil {
			_ = s.proc.Kill()
		}
	}
}
