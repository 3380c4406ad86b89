package runner

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"sync"
	"time"
)

// The worker's side of checkpoints: after the Spec, the daemon may write
// requestCheckpoint lines down the worker's stdin; the worker writes a
// workerEvent line to its stdout for each checkpoint file, before the
// Result, which stays the last line.

const (
	requestCheckpoint = "checkpoint"
	requestStop       = "checkpoint-stop"
)

// workerEvent is a line the worker writes before its Result.
type workerEvent struct {
	Checkpoint *Written `json:"checkpoint"`
}

// eventPrefix starts every workerEvent line and no Result.
var eventPrefix = []byte(`{"checkpoint":`)

// RequestCheckpoint asks the worker for a checkpoint at its next chance (the
// end of the current step of a reactor; the next time a command module
// offers one through the SDK). NewestCheckpoint tells when it is written.
func (p *Process) RequestCheckpoint() error {
	select {
	case <-p.done:
		return fmt.Errorf("checkpoint worker %d: %w", p.Pid(), os.ErrProcessDone)
	case p.toWorker <- []byte(requestCheckpoint + "\n"):
		return nil
	default:
		return nil // requests are queued already
	}
}

// StopAfterCheckpoint asks the worker to checkpoint at its next chance and
// then end; its Result then says Stopped. A worker that cannot checkpoint
// (a command module that never offers to) goes on: kill it after a while.
func (p *Process) StopAfterCheckpoint() error {
	select {
	case <-p.done:
		return fmt.Errorf("stop worker %d: %w", p.Pid(), os.ErrProcessDone)
	case p.toWorker <- []byte(requestStop + "\n"):
		return nil
	}
}

// CheckpointAndSuspend asks the worker for a checkpoint and suspends it once
// the checkpoint is written, or after wait if none comes (a command module
// that offers none): what a client does before it stops a task for the
// volunteer, so that the task's newest state is saved if the host then goes
// away. It returns the checkpoint, if one was written.
func (p *Process) CheckpointAndSuspend(ctx context.Context, wait time.Duration) (Written, bool, error) {
	before, _ := p.NewestCheckpoint()
	if err := p.RequestCheckpoint(); err != nil {
		return Written{}, false, err
	}
	timer := time.NewTimer(wait)
	defer timer.Stop()
	// Polled rather than taken from Checkpointed, whose notices belong to
	// whoever ships the checkpoints.
	poll := time.NewTicker(20 * time.Millisecond)
	defer poll.Stop()
	for {
		if w, ok := p.NewestCheckpoint(); ok && w.Seq > before.Seq {
			return w, true, p.Suspend()
		}
		select {
		case <-poll.C:
		case <-p.done:
			return Written{}, false, fmt.Errorf("suspend worker %d: %w", p.Pid(), os.ErrProcessDone)
		case <-timer.C:
			return Written{}, false, p.Suspend()
		case <-ctx.Done():
			return Written{}, false, ctx.Err()
		}
	}
}

// Checkpointed yields when the worker has written a checkpoint since the
// last receive.
func (p *Process) Checkpointed() <-chan struct{} { return p.ckpt.notify }

// NewestCheckpoint is the newest checkpoint the worker has written, if any.
func (p *Process) NewestCheckpoint() (Written, bool) {
	p.ckpt.mu.Lock()
	defer p.ckpt.mu.Unlock()
	return p.ckpt.newest, p.ckpt.newest.Seq > 0
}

// checkpoints keeps the newest checkpoint a worker reported.
type checkpoints struct {
	mu     sync.Mutex
	newest Written
	notify chan struct{}
}

func (c *checkpoints) add(w Written) {
	c.mu.Lock()
	if w.Seq > c.newest.Seq {
		c.newest = w
	}
	c.mu.Unlock()
	select {
	case c.notify <- struct{}{}:
	default:
	}
}

// eventWriter is the worker's stdout as the daemon reads it: event lines go
// to on, every other line (a Result) to rest.
type eventWriter struct {
	on   func(Written)
	rest func(line []byte)
	line []byte // an unfinished line
}

func (e *eventWriter) Write(p []byte) (int, error) {
	n := len(p)
	for len(p) > 0 {
		i := bytes.IndexByte(p, '\n')
		if i < 0 {
			e.line = append(e.line, p...)
			if len(e.line) > resultLimit {
				e.flushLine()
			}
			break
		}
		e.line = append(e.line, p[:i+1]...)
		p = p[i+1:]
		e.flushLine()
	}
	return n, nil
}

func (e *eventWriter) flushLine() {
	var ev workerEvent
	if bytes.HasPrefix(e.line, eventPrefix) && json.Unmarshal(e.line, &ev) == nil && ev.Checkpoint != nil {
		e.on(*ev.Checkpoint)
	} else {
		e.rest(e.line)
	}
	e.line = e.line[:0]
}

// ProcessCPUTime is the CPU time a running process has used so far, where
// the system tells (Linux): for showing what a task had done when its host
// died.
func ProcessCPUTime(pid int) (time.Duration, error) { return processCPU(pid) }
