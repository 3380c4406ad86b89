package daemon

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/momonga-project/momonga/client/runner"
	wu "github.com/momonga-project/momonga/workunits"
)

// Checkpoints (DESIGN §6, §7): every running task is checkpointed by its
// worker at the interval its work unit asks for, or CheckpointInterval; each
// checkpoint is uploaded as a blob and reported with vol.H.ckpt, so that the
// project can give the task to another host, which resumes it there, when
// this one departs. A daemon that stops (Ctrl-C, SIGTERM, leaving the
// project) first has its tasks checkpoint and ships those checkpoints,
// within StopGrace. A host that dies loses at most one interval of work.

// DefaultCheckpointInterval is BOINC's default "disk interval".
const DefaultCheckpointInterval = 60 * time.Second

// checkpointSpec says how a task checkpoints, and fetches the checkpoint it
// resumes from, if the project gave one. A checkpoint that cannot be fetched
// is left out: the task then starts from the beginning.
func (d *Daemon) checkpointSpec(ctx context.Context, a wu.Assignment, dir string) (*runner.CheckpointSpec, error) {
	interval := d.cfg.CheckpointInterval
	if a.CheckpointSeconds > 0 {
		interval = time.Duration(a.CheckpointSeconds * float64(time.Second))
	}
	spec := &runner.CheckpointSpec{App: a.AppHash, Task: a.Task, Dir: filepath.Join(dir, "checkpoints"), Interval: interval.Seconds()}
	if err := os.MkdirAll(spec.Dir, 0o700); err != nil {
		return nil, err
	}
	if c := a.Checkpoint; c != nil {
		var chain []string
		for _, h := range c.Blobs() {
			if _, err := d.blob(ctx, h, wu.MaxCheckpointBytes); err != nil {
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
func (d *Daemon) forgetCheckpoint(a wu.Assignment) {
	if a.Checkpoint != nil {
		for _, h := range a.Checkpoint.Blobs() {
			os.Remove(d.blobPath(h))
		}
	}
}

// waitShipping waits for the worker to end, shipping each checkpoint it
// writes to the project meanwhile, and the last one after it ends (the one
// it writes before it stops).
func (d *Daemon) waitShipping(ctx context.Context, s *slot, proc *runner.Process) runner.Result {
	ended := make(chan runner.Result, 1)
	go func() { ended <- proc.Wait() }()
	var shipped uint64
	ship := func() {
		w, ok := proc.NewestCheckpoint()
		if !ok || w.Seq <= shipped {
			return
		}
		if err := d.shipCheckpoint(ctx, s.a, w); err != nil {
			if ctx.Err() == nil {
				d.log.Warn("checkpoint not shipped", "task", s.a.Task, "seq", w.Seq, "err", err)
			}
			return
		}
		shipped = w.Seq
		d.cfg.Events(Event{Kind: "checkpoint", Task: s.a.Task, Seq: w.Seq, Progress: w.Progress, CPUSeconds: w.CPUSeconds})
	}
	if c := s.a.Checkpoint; c != nil {
		d.cfg.Events(Event{Kind: "resumed", Task: s.a.Task, Seq: c.Seq, Progress: c.Progress, CPUSeconds: c.CPUSeconds})
	}
	for {
		select {
		case res := <-ended:
			ship()
			if r := res.Resumed; r != nil && r.Error != "" {
				d.log.Warn("checkpoint refused; the task started from the beginning", "task", s.a.Task, "reason", r.Error)
			}
			return res
		case <-proc.Checkpointed():
			ship()
		}
	}
}

// shipCheckpoint uploads a checkpoint (and its base, which the project
// usually holds already) and reports it.
func (d *Daemon) shipCheckpoint(ctx context.Context, a wu.Assignment, w runner.Written) error {
	paths := []string{w.Path}
	if w.Base != "" {
		paths = []string{w.BasePath, w.Path}
	}
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil {
			return fmt.Errorf("read checkpoint: %w", err)
		}
		if _, err := d.c.upload(ctx, b); err != nil {
			return err
		}
	}
	rep := wu.CheckpointReport{V: wu.WireVersion, Task: a.Task, App: a.AppHash, Checkpoint: w.Ref()}
	return d.c.numbered(ctx, wu.OpCkpt, func(seq uint64) any { rep.Seq = seq; return rep }, &wu.Ack{}, 3)
}

// stopAll asks every running task to checkpoint and stop, and waits, at
// most StopGrace, for them to end and their checkpoints to be shipped. A
// command module that has shown no sign of checkpointing through the SDK is
// stopped at once rather than waited for.
func (d *Daemon) stopAll() {
	d.mu.Lock()
	for _, s := range d.running {
		if s.proc == nil {
			continue
		}
		if _, made := s.proc.NewestCheckpoint(); s.reactor || made || s.a.Checkpoint != nil {
			_ = s.proc.StopAfterCheckpoint()
		} else {
			_ = s.proc.Kill()
		}
	}
	n := len(d.running)
	d.mu.Unlock()
	if n == 0 {
		return
	}
	deadline := time.Now().Add(d.cfg.StopGrace)
	for d.runningCount() > 0 && time.Now().Before(deadline) {
		select {
		case <-d.done:
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// progress is what a heartbeat says of a running task: the fraction its app
// wrote to its progress file. The caller holds d.mu.
func (d *Daemon) progress(id string) wu.TaskProgress {
	p := wu.TaskProgress{Task: id}
	b, err := os.ReadFile(filepath.Join(d.cfg.DataDir, "slots", id, "root", "progress"))
	if err == nil {
		if f, err := strconv.ParseFloat(strings.TrimSpace(string(b)), 64); err == nil && f >= 0 && f <= 1 {
			p.Fraction = f
		}
	}
	if s := d.running[id]; s != nil && s.proc != nil {
		if cpu, err := s.proc.CPUTime(); err == nil {
			p.CPUSeconds = cpu.Seconds()
		}
	}
	return p
}

// taskCPU is the CPU time of a task on every host that ran it: this run's,
// plus what the checkpoint it resumed from had used.
func taskCPU(res runner.Result) float64 {
	if r := res.Resumed; r != nil && r.Error == "" {
		return res.CPUSeconds + r.CPUSeconds
	}
	return res.CPUSeconds
}
