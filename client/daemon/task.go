package daemon

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/momonga-project/momonga/client/plan"
	"github.com/momonga-project/momonga/client/runner"
	"github.com/momonga-project/momonga/internal/atomicfile"
	wu "github.com/momonga-project/momonga/workunits"
)

type taskState int

const (
	stateQueued  taskState = iota // assigned to this host, not started
	stateRunning                  // its worker is starting or running (stopped when t.stopped)
)

// task is a task this host holds for a project.
type task struct {
	key      string
	proj     *project
	a        wu.Assignment
	received time.Time

	state   taskState
	proc    *runner.Process
	stopped bool          // suspended by the daemon (or meant to be, while the worker starts)
	reason  string        // why it is stopped
	started time.Time     // when its worker started
	ran     time.Duration // running time so far
	rss     int64
	aborted bool   // the project no longer wants it
	requeue string // the daemon stopped it to run it again later, and why
	reactor bool   // its module can be snapshotted between any two steps
}

func taskKey(projectURL, task string) string {
	h := sha256.Sum256([]byte(projectURL + "\x00" + task))
	return hex.EncodeToString(h[:8])
}

// defaultEstimate is the running time assumed for a task of an app this
// host has not finished yet, without an fpops estimate.
const defaultEstimate = time.Hour

// estimateLocked is how long t should run in all.
func (d *Daemon) estimateLocked(t *task) time.Duration {
	if t.a.FPOps > 0 && d.bench.FLOPS > 0 {
		return time.Duration(t.a.FPOps / d.bench.FLOPS * float64(time.Second))
	}
	if s, ok := t.proj.meanSecs[t.a.App]; ok {
		return time.Duration(s * float64(time.Second))
	}
	return defaultEstimate
}

// planInputLocked is the tasks and projects as client/plan sees them.
func (d *Daemon) planInputLocked(now time.Time) ([]plan.Task, []plan.Project) {
	tasks := make([]plan.Task, 0, len(d.tasks))
	for _, t := range d.tasks {
		if t.aborted || t.requeue != "" && t.state == stateRunning {
			continue
		}
		tasks = append(tasks, plan.Task{
			ID: t.key, Project: t.proj.url, Deadline: t.a.Deadline, Running: t.state == stateRunning,
			Remain: max(d.estimateLocked(t)-t.ran, time.Second), Memory: t.a.Limits.WithDefaults().MemoryBytes,
		})
	}
	projects := make([]plan.Project, 0, len(d.projects))
	for _, p := range d.projects {
		pp := p.plan
		pp.CanFetch = p.connected && !p.fetching && !now.Before(p.nextFetch) && len(p.tasksLocked(d)) < maxTasksPerProject
		projects = append(projects, pp)
	}
	return tasks, projects
}

// startLocked starts t's worker in a goroutine of its own.
func (d *Daemon) startLocked(t *task) {
	t.state = stateRunning
	t.stopped = false
	t.started = d.now()
	d.dirty = true
	d.wg.Add(1)
	go d.runTask(t)
}

func (d *Daemon) slotDir(t *task) string { return filepath.Join(d.cfg.DataDir, "slots", t.key) }

// runTask fetches what a task needs, runs it in a worker and reports it.
func (d *Daemon) runTask(t *task) {
	defer d.wg.Done()
	defer d.kick()
	ctx, workCtx := d.runCtx, d.workCtx
	dir := d.slotDir(t)
	// A slot left by a run that crashed must not leak into this one: the
	// task starts from its checkpoint or from nothing.
	os.RemoveAll(dir)
	defer d.forgetCheckpoint(t)
	// The worker outlives ctx by StopGrace, to checkpoint as the daemon
	// stops (stopAll).
	res, output, err := d.execute(workCtx, t, dir)
	os.RemoveAll(dir)

	d.mu.Lock()
	t.proc = nil
	switch {
	case res.Stopped || workCtx.Err() != nil || ctx.Err() != nil && (res.Failed || err != nil):
		// Stopping: the task stays queued here, and the project may give it
		// to another host, which resumes it from its newest checkpoint,
		// when its lease runs out. (One that finished meanwhile is still
		// reported.)
		t.state, t.stopped, t.ran, t.requeue = stateQueued, false, 0, ""
		d.mu.Unlock()
		d.event(Event{Kind: "stopped", Task: t.a.Task, Project: t.proj.url, Reason: res.Reason})
		return
	case t.requeue != "" && !t.aborted:
		// Stopped by the daemon to run again later: the task stays.
		t.state, t.stopped, t.ran, t.requeue = stateQueued, false, 0, ""
		d.mu.Unlock()
		return
	}
	delete(d.tasks, t.key)
	d.dirty = true
	p := t.proj
	if err == nil && !res.Failed {
		p.learn(t.a.App, res.Wall.Seconds())
	}
	aborted := t.aborted
	if !aborted {
		p.unreported[t.a.Task] = true
	}
	d.mu.Unlock()

	if aborted {
		d.event(Event{Kind: "aborted", Task: t.a.Task, Project: p.url})
		return
	}
	report := wu.Report{V: wu.WireVersion, Task: t.a.Task, Outcome: wu.OutcomeFailure}
	switch {
	case err != nil:
		report.Reason = err.Error()
	case res.Failed:
		report.ExitCode, report.Reason, report.CPUSeconds = res.ExitCode, res.Reason, taskCPU(res)
	default:
		report.ExitCode, report.CPUSeconds = res.ExitCode, taskCPU(res)
		report.Outcome = wu.OutcomeSuccess
		report.Output = wu.HashOf(output)
		report.OutputSize = int64(len(output))
		if err := d.keepBlob(report.Output, output); err != nil {
			report.Outcome, report.Reason = wu.OutcomeFailure, "keep output: "+err.Error()
		}
	}
	d.event(Event{Kind: "finished", Task: t.a.Task, Project: p.url, Failed: report.Outcome != wu.OutcomeSuccess, Reason: report.Reason})
	// The report is on disk before it is sent, so a crash between finishing
	// and reporting loses nothing.
	if err := d.saveReport(savedReport{Report: report, Project: p.url}); err != nil {
		// The project sends the task again at the next work request.
		d.log.Warn("save report", "task", t.a.Task, "err", err)
		d.mu.Lock()
		delete(p.unreported, t.a.Task)
		d.mu.Unlock()
	}
	p.kickReports()
}

func (d *Daemon) execute(ctx context.Context, t *task, dir string) (runner.Result, []byte, error) {
	a := t.a
	module, err := d.blob(ctx, t.proj, a.AppHash, a.AppSize)
	if err != nil {
		return runner.Result{}, nil, fmt.Errorf("fetch app %s: %w", a.App, err)
	}
	d.mu.Lock()
	att := t.proj.att
	d.mu.Unlock()
	if err := verifyModule(att, a, module); err != nil {
		d.log.Error("app refused", "project", t.proj.url, "err", err)
		return runner.Result{}, nil, err
	}
	if err := wu.CheckModule(module); err != nil {
		return runner.Result{}, nil, fmt.Errorf("app %s: %w", a.App, err)
	}
	if m, err := wu.ParseModule(module); err == nil {
		d.mu.Lock()
		t.reactor = m.IsReactor()
		d.mu.Unlock()
	}
	spec := runner.Spec{
		Module:   d.blobPath(a.AppHash),
		Name:     a.App,
		Args:     a.Args,
		Dir:      filepath.Join(dir, "root"),
		Output:   filepath.Join(dir, "stdout"),
		Limits:   a.Limits.WithDefaults(),
		CacheDir: filepath.Join(d.cfg.DataDir, "cache"),
		Seed:     a.WorkUnit,
	}
	if spec.Checkpoint, err = d.checkpointSpec(ctx, t, dir); err != nil {
		return runner.Result{}, nil, err
	}
	if spec.Checkpoint == nil || !spec.Checkpoint.Interpreter {
		spec.Engine = d.engines.pick(a.AppHash)
	}
	if a.Stdin != "" {
		if _, err := d.blob(ctx, t.proj, a.Stdin, wu.MaxOutputBytes); err != nil {
			return runner.Result{}, nil, fmt.Errorf("fetch input: %w", err)
		}
		d.holdsInput(a.Stdin)
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
	t.proc = proc
	stop, kill := t.stopped, t.aborted || t.requeue != ""
	d.mu.Unlock()
	if kill {
		_ = proc.Kill()
	} else if stop {
		_ = proc.Suspend()
	}
	d.kick()
	d.event(Event{Kind: "started", Task: a.Task, Project: t.proj.url, Pid: proc.Pid()})
	res := d.waitShipping(ctx, t, proc)
	if best, changed := d.engines.record(a.AppHash, a.FPOps, res); changed {
		d.log.Info("app runs with less CPU on this engine here", "app", a.App, "engine", best)
	}
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
func (d *Daemon) blob(ctx context.Context, p *project, h wu.Hash, maxBytes int64) ([]byte, error) {
	if !h.Valid() {
		return nil, fmt.Errorf("malformed blob hash %q", h)
	}
	if b, err := os.ReadFile(d.blobPath(h)); err == nil && wu.HashOf(b) == h {
		return b, nil
	}
	c := p.connection()
	if c == nil {
		return nil, errors.New("not connected to the project")
	}
	b, err := c.download(ctx, h, maxBytes)
	if err != nil {
		return nil, err
	}
	return b, d.keepBlob(h, b)
}

// holdsInput notes that the cache holds input blob h, for the work
// requests to report (the project prefers giving a host work on what it
// holds).
func (d *Daemon) holdsInput(h wu.Hash) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.inputs = slices.DeleteFunc(d.inputs, func(o wu.Hash) bool { return o == h })
	d.inputs = slices.Insert(d.inputs, 0, h)
	if len(d.inputs) > wu.MaxCacheReport {
		d.inputs = d.inputs[:wu.MaxCacheReport]
	}
}

func (d *Daemon) keepBlob(h wu.Hash, b []byte) error {
	return atomicfile.Write(d.blobPath(h), b, 0o600)
}

// savedReport is a finished task's report waiting in reports/ to be sent,
// with the project it goes to. Files written before several projects could
// be attached hold the bare Report.
type savedReport struct {
	wu.Report
	Project string `json:"project,omitempty"`
}

func (d *Daemon) reportPath(r savedReport) string {
	return filepath.Join(d.cfg.DataDir, "reports", projectKey(r.Project)+"-"+taskKey(r.Project, r.Task)+".json")
}

func (d *Daemon) saveReport(r savedReport) error {
	return atomicfile.Write(d.reportPath(r), wu.Encode(r), 0o600)
}

func readReport(path string) (savedReport, error) {
	var r savedReport
	b, err := os.ReadFile(path)
	if err != nil {
		return r, err
	}
	if len(b) > wu.MaxMessageBytes {
		return r, fmt.Errorf("%d bytes, more than a report can be", len(b))
	}
	if err := json.Unmarshal(b, &r); err != nil {
		return r, err
	}
	r.Seq = 1 // numbered afresh when sent
	return r, r.Report.Validate()
}
