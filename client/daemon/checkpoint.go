package daemon

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/momonga-project/momonga/client/runner"
	wu "github.com/momonga-project/momonga/workunits"
)

// Checkpoints (DESIGN §6, §7): every running task is checkpointed by its
// worker at the interval its work unit asks for, or CheckpointInterval, or
// the preference checkpoint_seconds; each checkpoint is uploaded as a blob
// and reported with vol.H.ckpt to the task's project, so that the project can
// give the task to another host, which resumes it there, when this one
// departs. Before a task is suspended for the person it is asked for a
// checkpoint (workerCheckpointer). A daemon that stops (Ctrl-C, SIGTERM) first
// has its tasks checkpoint and ships those checkpoints, within StopGrace. A
// host that dies loses at most one interval of work.

// DefaultCheckpointInterval is BOINC's default "disk interval".
const DefaultCheckpointInterval = 60 * time.Second

// checkpointSpec says how a task checkpoints, and fetches the checkpoint it
// resumes from, if the project gave one. A checkpoint that cannot be fetched
// is left out: the task then starts from the beginning.
func (d *Daemon) checkpointSpec(ctx context.Context, t *task, dir string) (*runner.CheckpointSpec, error) {
	a := t.a
	interval := d.cfg.CheckpointInterval
	switch {
	case a.CheckpointSeconds > 0:
		interval = time.Duration(a.CheckpointSeconds * float64(time.Second))
	case interval <= 0:
		interval = d.CheckpointInterval()
	}
	if interval <= 0 {
		interval = DefaultCheckpointInterval
	}
	spec := &runner.CheckpointSpec{App: a.AppHash, Task: a.Task, Dir: filepath.Join(dir, "checkpoints"), Interval: interval.Seconds()}
	if err := os.MkdirAll(spec.Dir, 0o700); err != nil {
		return nil, err
	}
	if c := a.Checkpoint; c != nil {
		var chain []string
		for _, h := range c.Blobs() {
			if _, err := d.blob(ctx, t.proj, h, wu.MaxCheckpointBytes); err != nil {
				d.log.Warn("checkpoint not fetched; the task starts from the beginning", "task", a.Task, "err", err)
				return spec, nil
			}
			chain = append(chain, d.blobPath(h))
		}
		spec.Resume = chain
	}
	return spec, nil
}

// forgetCheckpoint removes from the blob cache the checkpoint a task was
// given: it serves that task only, once.
func (d *Daemon) forgetCheckpoint(t *task) {
	if a := t.a; a.Checkpoint != nil {
		for _, h := range a.Checkpoint.Blobs() {
			os.Remove(d.blobPath(h))
		}
	}
}

// waitShipping waits for the worker to end, shipping each checkpoint it
// writes to the project meanwhile, and the last one after it ends (the one
// it writes before it stops).
func (d *Daemon) waitShipping(ctx context.Context, t *task, proc *runner.Process) runner.Result {
	ended := make(chan runner.Result, 1)
	go func() { ended <- proc.Wait() }()
	var shipped uint64
	ship := func() {
		w, ok := proc.NewestCheckpoint()
		if !ok || w.Seq <= shipped {
			return
		}
		if err := d.shipCheckpoint(ctx, t, w); err != nil {
			if ctx.Err() == nil {
				d.log.Warn("checkpoint not shipped", "task", t.a.Task, "seq", w.Seq, "err", err)
			}
			return
		}
		shipped = w.Seq
		d.event(Event{Kind: "checkpoint", Task: t.a.Task, Project: t.proj.url, Seq: w.Seq, Progress: w.Progress, CPUSeconds: w.CPUSeconds})
	}
	if c := t.a.Checkpoint; c != nil {
		d.event(Event{Kind: "resumed", Task: t.a.Task, Project: t.proj.url, Seq: c.Seq, Progress: c.Progress, CPUSeconds: c.CPUSeconds})
	}
	for {
		select {
		case res := <-ended:
			ship()
			if r := res.Resumed; r != nil && r.Error != "" {
				d.log.Warn("checkpoint refused; the task started from the beginning", "task", t.a.Task, "reason", r.Error)
			}
			return res
		case <-proc.Checkpointed():
			ship()
		}
	}
}

// shipCheckpoint uploads a checkpoint (and its base, which the project
// usually holds already) and reports it.
func (d *Daemon) shipCheckpoint(ctx context.Context, t *task, w runner.Written) error {
	c := t.proj.connection()
	if c == nil {
		return errors.New("not connected to the project")
	}
	paths := []string{w.Path}
	if w.Base != "" {
		paths = []string{w.BasePath, w.Path}
	}
	// Read before anything is sent: the worker goes on checkpointing
	// while a slow link uploads, and removes the files it no longer
	// needs.
	var blobs [][]byte
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil {
			return fmt.Errorf("read checkpoint: %w", err)
		}
		blobs = append(blobs, b)
	}
	for _, b := range blobs {
		if _, err := c.upload(ctx, b); err != nil {
			return err
		}
	}
	rep := wu.CheckpointReport{V: wu.WireVersion, Task: t.a.Task, App: t.a.AppHash, Checkpoint: w.Ref()}
	return c.numbered(ctx, wu.OpCkpt, func(seq uint64) any { rep.Seq = seq; return rep }, &wu.Ack{}, 3)
}

// stopAll asks every running task to checkpoint and stop, and waits, at
// most StopGrace, for them to end and their checkpoints to be shipped. A
// command module that has shown no sign of checkpointing through the SDK is
// stopped at once rather than waited for, and so is a task suspended for the
// person: it was asked for a checkpoint as it was suspended.
func (d *Daemon) stopAll() {
	d.mu.Lock()
	for _, t := range d.tasks {
		if t.proc == nil {
			continue
		}
		if _, made := t.proc.NewestCheckpoint(); !t.stopped && (t.reactor || made || t.a.Checkpoint != nil) {
			_ = t.proc.StopAfterCheckpoint()
		} else {
			_ = t.proc.Kill()
		}
	}
	d.mu.Unlock()
	// StopGrace is real time the workers get, whatever the daemon's clock.
	grace := time.NewTimer(d.cfg.StopGrace)
	defer grace.Stop()
	poll := time.NewTicker(50 * time.Millisecond)
	defer poll.Stop()
	for d.workersLeft() > 0 {
		select {
		case <-grace.C:
			return
		case <-poll.C:
		}
	}
}

// workersLeft is how many tasks still have a worker process.
func (d *Daemon) workersLeft() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	n := 0
	for _, t := range d.tasks {
		if t.state == stateRunning {
			n++
		}
	}
	return n
}

// progressLocked is what a heartbeat says of a task: the fraction its app
// wrote to its progress file, and the CPU time it has used.
func (d *Daemon) progressLocked(t *task) wu.TaskProgress {
	p := wu.TaskProgress{Task: t.a.Task, CPUSeconds: t.ran.Seconds(), Fraction: d.fraction(t)}
	if t.proc != nil {
		if cpu, err := t.proc.CPUTime(); err == nil {
			p.CPUSeconds = cpu.Seconds()
		}
	}
	return p
}

// workerCheckpointer asks a task's worker for a checkpoint and waits for it
// to be written (waitShipping ships it): the Checkpointer a daemon has
// unless its Config names another.
type workerCheckpointer struct{}

func (workerCheckpointer) Checkpoint(ctx context.Context, _ string, proc *runner.Process) error {
	if proc == nil {
		return nil
	}
	before, _ := proc.NewestCheckpoint()
	if err := proc.RequestCheckpoint(); err != nil {
		return err
	}
	poll := time.NewTicker(20 * time.Millisecond)
	defer poll.Stop()
	for {
		if w, ok := proc.NewestCheckpoint(); ok && w.Seq > before.Seq {
			return nil
		}
		select {
		case <-poll.C:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// taskCPU is the CPU time of a task on every host that ran it: this run's,
// plus what the checkpoint it resumed from had used.
func taskCPU(res runner.Result) float64 {
	if r := res.Resumed; r != nil && r.Error == "" {
		return res.CPUSeconds + r.CPUSeconds
	}
	return res.CPUSeconds
}
