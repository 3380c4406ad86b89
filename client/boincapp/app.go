package boincapp

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/momonga-project/momonga/client/runner"
	"github.com/momonga-project/momonga/internal/atomicfile"
	wu "github.com/momonga-project/momonga/workunits"
)

// App runs one momonga task as a BOINC app in a slot directory: the
// task's module under the runner, in a worker process of its own that it
// suspends and resumes as the client asks, checkpointing into the slot so
// that the client can stop it and start it again where it was.
type App struct {
	Dir    string        // the slot directory
	Args   []string      // the app's arguments, the work unit's command line
	Worker runner.Worker // how to start a worker process
	Stderr io.Writer     // the slot's stderr.txt, sent to the project with the result
	// Tick is how often the app reads the client's messages and tells it
	// its status (default one second, as BOINC's API).
	Tick time.Duration
	// HeartbeatTimeout is how long the app waits without a heartbeat
	// before it takes the client for gone and stops (default 30 s).
	HeartbeatTimeout time.Duration
	// Standalone runs without a client: no shared memory, no heartbeats.
	Standalone bool
}

// Default checkpoint interval when neither the work unit nor the client
// says: BOINC's default disk interval.
const defaultCheckpointSeconds = 60

// stopWait is how long a worker asked to stop may take to write its last
// checkpoint.
const stopWait = 20 * time.Second

// checkpointState is the newest checkpoint of the task in its slot, written
// after each checkpoint so that the next run of the app resumes from it.
const checkpointState = "checkpoint.json"

// Run runs the task and returns the process's exit status.
func (a App) Run(ctx context.Context) int {
	if a.Tick <= 0 {
		a.Tick = time.Second
	}
	if a.HeartbeatTimeout <= 0 {
		a.HeartbeatTimeout = 30 * time.Second
	}
	if a.Stderr == nil {
		a.Stderr = os.Stderr
	}
	r, err := a.prepare()
	if err != nil {
		return a.fail(err.Error())
	}
	defer r.shm.Close()
	proc, err := a.Worker.Start(ctx, r.spec)
	if err != nil {
		// The worker could not start on this computer: let the client try
		// again later rather than fail the task.
		fmt.Fprintf(a.Stderr, "momonga: %v\n", err)
		_ = TemporaryExit(a.Dir, 300, "the momonga runner could not start: "+err.Error())
		return 0
	}
	r.proc = proc
	return r.loop(ctx)
}

// run is one run of the app.
type run struct {
	a         App
	data      InitData
	task      wu.BOINCTask
	spec      runner.Spec
	shm       *Shm
	proc      *runner.Process
	ckptDir   string
	cpuBefore float64 // CPU seconds of the task's earlier runs
	ckptCPU   float64
	fraction  float64
}

// prepare reads what the client gave the task and says how to run it.
func (a App) prepare() (*run, error) {
	r := &run{a: a, fraction: -1}
	var err error
	if a.Standalone {
		r.data = InitData{FractionEnd: 1}
		r.shm, _ = NewShm(make([]byte, shmSize))
	} else {
		if r.data, err = ReadInitData(a.Dir); err != nil {
			return nil, err
		}
		if r.shm, err = Attach(a.Dir, r.data); err != nil {
			return nil, err
		}
	}
	if r.task, err = wu.ParseBOINCTask(a.Args); err != nil {
		return nil, err
	}
	r.cpuBefore, r.ckptCPU = r.data.WUCPUTime, r.data.WUCPUTime
	t := r.task
	module, err := Resolve(a.Dir, wu.BOINCModuleFile)
	if err != nil {
		return nil, err
	}
	out, err := Resolve(a.Dir, wu.BOINCOutputFile)
	if err != nil {
		// An output file the client has not made yet: it is found later
		// under the name the link gives, so it must exist now.
		return nil, err
	}
	work := filepath.Join(a.Dir, "momonga")
	r.ckptDir = filepath.Join(work, "checkpoints")
	root := filepath.Join(work, "root")
	for _, d := range []string{r.ckptDir, root} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return nil, err
		}
	}
	interval := t.CheckpointSeconds
	if interval <= 0 {
		interval = r.data.CheckpointPeriod
	}
	if interval <= 0 {
		interval = defaultCheckpointSeconds
	}
	r.spec = runner.Spec{
		Module: module, Name: t.App, Args: t.Args, Dir: root, Output: out, Limits: t.Limits, Seed: t.WorkUnit,
		Checkpoint: &runner.CheckpointSpec{App: t.AppHash, Task: t.Task, Dir: r.ckptDir, Interval: interval},
	}
	if r.data.ProjectDir != "" {
		r.spec.CacheDir = filepath.Join(r.data.ProjectDir, "momonga-cache")
	}
	if t.Stdin {
		if r.spec.Stdin, err = Resolve(a.Dir, wu.BOINCStdinFile); err != nil {
			return nil, err
		}
	}
	if chain, ok := r.savedChain(); ok {
		fmt.Fprintf(a.Stderr, "momonga: resuming from the checkpoint in this slot (%.0f%% done)\n", 100*max(r.fraction, 0))
		r.spec.Checkpoint.Resume = chain
	} else {
		for i := range t.Checkpoints {
			p, err := Resolve(a.Dir, fmt.Sprintf("%s%d", wu.BOINCCheckpointFile, i))
			if err != nil {
				return nil, err
			}
			r.spec.Checkpoint.Resume = append(r.spec.Checkpoint.Resume, p)
		}
	}
	return r, nil
}

// savedChain is the checkpoint an earlier run of the app in this slot
// left, base first.
func (r *run) savedChain() ([]string, bool) {
	b, err := os.ReadFile(filepath.Join(r.ckptDir, checkpointState))
	if err != nil {
		return nil, false
	}
	var w runner.Written
	if json.Unmarshal(b, &w) != nil || w.Path == "" {
		return nil, false
	}
	var chain []string
	if w.BasePath != "" {
		chain = append(chain, filepath.Join(r.ckptDir, filepath.Base(w.BasePath)))
	}
	chain = append(chain, filepath.Join(r.ckptDir, filepath.Base(w.Path)))
	for _, p := range chain {
		if _, err := os.Stat(p); err != nil {
			return nil, false
		}
	}
	if w.Progress > 0 {
		r.fraction = w.Progress
	}
	return chain, true
}

// saveCheckpoint records the worker's newest checkpoint in the slot and
// removes the older ones.
func (r *run) saveCheckpoint() {
	w, ok := r.proc.NewestCheckpoint()
	if !ok {
		return
	}
	b, _ := json.Marshal(w)
	if err := atomicfile.Write(filepath.Join(r.ckptDir, checkpointState), b, 0o600); err != nil {
		fmt.Fprintf(r.a.Stderr, "momonga: record checkpoint: %v\n", err)
		return
	}
	r.ckptCPU = r.cpu()
	if w.Progress > 0 {
		r.fraction = w.Progress
	}
	keep := map[string]bool{checkpointState: true, filepath.Base(w.Path): true}
	if w.BasePath != "" {
		keep[filepath.Base(w.BasePath)] = true
	}
	entries, _ := os.ReadDir(r.ckptDir)
	for _, e := range entries {
		if !keep[e.Name()] && !strings.HasPrefix(e.Name(), ".") {
			os.Remove(filepath.Join(r.ckptDir, e.Name()))
		}
	}
}

// cpu is the task's CPU time so far, earlier runs included.
func (r *run) cpu() float64 {
	d, err := r.proc.CPUTime()
	if err != nil {
		return r.cpuBefore
	}
	return r.cpuBefore + d.Seconds()
}

func (r *run) sendStatus() {
	r.shm.SendStatus(Status{CPUSeconds: r.cpu(), CheckpointCPUSeconds: r.ckptCPU, Fraction: r.fraction}, r.data)
}

// loop serves the client until the task ends or the client stops it.
func (r *run) loop(ctx context.Context) int {
	ended := make(chan runner.Result, 1)
	go func() { ended <- r.proc.Wait() }()
	tick := time.NewTicker(r.a.Tick)
	defer tick.Stop()
	lastBeat := time.Now()
	suspended := false
	for {
		select {
		case res := <-ended:
			return r.finish(res)
		case <-r.proc.Checkpointed():
			r.saveCheckpoint()
		case <-ctx.Done():
			return r.stop(ended, suspended)
		case now := <-tick.C:
			if r.a.Standalone || r.shm.Heartbeat() {
				lastBeat = now
			} else if now.Sub(lastBeat) > r.a.HeartbeatTimeout {
				fmt.Fprintln(r.a.Stderr, "momonga: no heartbeat from the BOINC client; stopping after a checkpoint")
				return r.stop(ended, suspended)
			}
			if c, ok := r.shm.Control(); ok {
				switch {
				case c.Abort:
					_ = r.proc.Kill()
					<-ended
					return ExitAbortedByClient
				case c.Quit:
					return r.stop(ended, suspended)
				case c.Suspend && !suspended:
					if err := r.proc.Suspend(); err != nil {
						// No way to stop a process here: checkpoint, end, and
						// let the client start the task again on resume.
						code := r.stop(ended, false)
						_ = TemporaryExit(r.a.Dir, 1, "suspended")
						return code
					}
					suspended = true
				case c.Resume && suspended:
					if err := r.proc.Resume(); err == nil {
						suspended = false
					}
				}
			}
			r.sendStatus()
		}
	}
}

// stop has the worker checkpoint and end, and ends the app without
// finishing the task: the client runs it again later, from the checkpoint.
func (r *run) stop(ended <-chan runner.Result, suspended bool) int {
	if suspended {
		_ = r.proc.Resume()
	}
	_ = r.proc.StopAfterCheckpoint()
	timer := time.NewTimer(stopWait)
	defer timer.Stop()
	select {
	case res := <-ended:
		if !res.Stopped {
			// It finished before it could stop.
			return r.finish(res)
		}
	case <-timer.C:
		// A command module that never offers a checkpoint: it starts again
		// from its last one.
		_ = r.proc.Kill()
		<-ended
	}
	r.saveCheckpoint()
	r.sendStatus()
	return 0
}

// finish reports how the task ended: boinc_finish_called with its status.
func (r *run) finish(res runner.Result) int {
	r.saveCheckpoint()
	if res.Stopped {
		return 0
	}
	if rs := res.Resumed; rs != nil && rs.Error != "" {
		fmt.Fprintf(r.a.Stderr, "momonga: the checkpoint was refused, the task started again: %s\n", rs.Error)
	} else if rs != nil {
		fmt.Fprintf(r.a.Stderr, "momonga: resumed from checkpoint %d at %.0f%%\n", rs.Seq, 100*rs.Progress)
	}
	if res.Failed {
		if res.Stderr != "" {
			fmt.Fprintf(r.a.Stderr, "%s\n", strings.TrimSpace(res.Stderr))
		}
		return r.a.failWith(r.shm, r.data, res.Reason, r.cpuBefore+res.CPUSeconds)
	}
	cpu := r.cpuBefore + res.CPUSeconds
	r.shm.SendFinalStatus(Status{CPUSeconds: cpu, CheckpointCPUSeconds: cpu, Fraction: 1}, r.data)
	if err := Finish(r.a.Dir, 0, ""); err != nil {
		fmt.Fprintf(r.a.Stderr, "momonga: %v\n", err)
		return 1
	}
	return 0
}

// fail ends a task that cannot run.
func (a App) fail(reason string) int { return a.failWith(nil, InitData{}, reason, 0) }

func (a App) failWith(shm *Shm, d InitData, reason string, cpu float64) int {
	fmt.Fprintf(a.Stderr, "momonga: %s\n", reason)
	if shm != nil {
		shm.SendFinalStatus(Status{CPUSeconds: cpu, CheckpointCPUSeconds: cpu, Fraction: -1}, d)
	}
	if err := Finish(a.Dir, 1, reason); err != nil && !errors.Is(err, os.ErrNotExist) {
		fmt.Fprintf(a.Stderr, "momonga: %v\n", err)
	}
	return 1
}
