package runner

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"sync"
	"time"
)

// Worker says how to start a worker process: the client binary re-executed
// with its hidden worker subcommand, e.g. {os.Executable(), "worker"}, whose
// body is WorkerMain.
type Worker struct {
	Command []string
}

// StoppedByClient is the Reason of a run ended by Process.Kill.
const StoppedByClient = "stopped by the client"

// resultLimit bounds what is read back from a worker: a Result is a few
// kilobytes, and a worker that went wrong must not make the daemon hoard.
const resultLimit = 1 << 20

// exitOrphaned is the worker's exit code when its daemon went away.
const exitOrphaned = 3

// Process is one task running in a worker process. Its time limit counts
// running time only: the clock stops with Suspend and starts again with
// Resume. The limit is enforced from the moment Start returns, whether or not
// anyone is in Wait.
type Process struct {
	cmd    *exec.Cmd
	limit  time.Duration
	result bytes.Buffer   // the worker's stdout: one Result as JSON
	stderr *stderrCapture // the worker's own stderr: Go runtime crashes

	changed chan struct{} // Suspend or Resume happened
	done    chan struct{} // closed when res is final

	mu         sync.Mutex
	ran        time.Duration // running time before the current stretch
	since      time.Time     // start of the current running stretch
	stopped    bool
	exited     bool
	killReason string

	res Result

	toWorker chan []byte // lines for the worker after its Spec
	ckpt     checkpoints // what the worker reports of its checkpoints
}

// Start starts a worker process for spec. When ctx ends, the worker is
// killed as if by Kill.
func (w Worker) Start(ctx context.Context, spec Spec) (*Process, error) {
	if len(w.Command) == 0 {
		return nil, errors.New("start worker: no command given")
	}
	spec.Limits = spec.Limits.WithDefaults()
	msg, err := json.Marshal(spec)
	if err != nil {
		return nil, fmt.Errorf("start worker: encode task: %w", err)
	}
	p := &Process{
		limit:    secondsToDuration(spec.Limits.MaxSeconds),
		stderr:   newStderrCapture(),
		changed:  make(chan struct{}, 1),
		done:     make(chan struct{}),
		toWorker: make(chan []byte, 8),
		ckpt:     checkpoints{notify: make(chan struct{}, 1)},
	}
	p.cmd = exec.Command(w.Command[0], w.Command[1:]...)
	p.cmd.SysProcAttr = workerAttr()
	p.cmd.Stdout = &eventWriter{on: p.ckpt.add, rest: &limitedWriter{w: &p.result, left: resultLimit}}
	p.cmd.Stderr = p.stderr
	stdin, err := p.cmd.StdinPipe()
	if err != nil {
		return nil, fmt.Errorf("start worker: %w", err)
	}
	if err := p.cmd.Start(); err != nil {
		return nil, fmt.Errorf("start worker %s: %w", w.Command[0], err)
	}
	p.since = time.Now()
	// The task goes down the pipe, which then stays open for requests: its
	// end tells the worker that the daemon is gone. A write that fails means
	// the worker died first, which Wait reports from its exit status.
	p.toWorker <- append(msg, '\n')
	go p.feed(stdin)
	go p.supervise(ctx)
	return p, nil
}

func secondsToDuration(s float64) time.Duration {
	d := s * float64(time.Second)
	if d >= float64(1<<63-1) {
		return 1<<63 - 1
	}
	return time.Duration(d)
}

// Pid is the worker's process id.
func (p *Process) Pid() int { return p.cmd.Process.Pid }

// Suspend stops the worker (SIGSTOP) and the clock of its time limit. It
// returns an error on systems without such signals and once the worker has
// ended.
func (p *Process) Suspend() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.exited {
		return fmt.Errorf("suspend worker %d: %w", p.Pid(), os.ErrProcessDone)
	}
	if p.stopped {
		return nil
	}
	if err := suspend(p.cmd.Process); err != nil {
		return fmt.Errorf("suspend worker %d: %w", p.Pid(), err)
	}
	p.ran += time.Since(p.since)
	p.stopped = true
	p.notify()
	return nil
}

// Resume continues a suspended worker (SIGCONT) and its clock.
func (p *Process) Resume() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.exited {
		return fmt.Errorf("resume worker %d: %w", p.Pid(), os.ErrProcessDone)
	}
	if !p.stopped {
		return nil
	}
	if err := resume(p.cmd.Process); err != nil {
		return fmt.Errorf("resume worker %d: %w", p.Pid(), err)
	}
	p.since = time.Now()
	p.stopped = false
	p.notify()
	return nil
}

func (p *Process) notify() {
	select {
	case p.changed <- struct{}{}:
	default:
	}
}

// Kill ends the worker; its Result says StoppedByClient.
func (p *Process) Kill() error { return p.KillWithReason(StoppedByClient) }

// KillWithReason ends the worker; its Result is a failure with reason. If the
// worker is killed more than once, the first reason stays.
func (p *Process) KillWithReason(reason string) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.exited {
		return nil
	}
	if err := p.cmd.Process.Kill(); errors.Is(err, os.ErrProcessDone) {
		return nil // it ended on its own, and its own result stands
	} else if err != nil {
		return fmt.Errorf("kill worker %d: %w", p.Pid(), err)
	}
	if p.killReason == "" {
		p.killReason = reason
	}
	return nil
}

// CPUTime is the CPU time the worker has used so far. While it runs this is
// only known on Linux; once it has ended, everywhere.
func (p *Process) CPUTime() (time.Duration, error) {
	select {
	case <-p.done:
		return secondsToDuration(p.res.CPUSeconds), nil
	default:
	}
	return processCPU(p.Pid())
}

// Wait blocks until the worker has ended and returns how the run went.
func (p *Process) Wait() Result {
	<-p.done
	return p.res
}

// running is the running time so far. The caller holds p.mu.
func (p *Process) running() time.Duration {
	if p.stopped {
		return p.ran
	}
	return p.ran + time.Since(p.since)
}

// supervise owns the worker from Start to its end: it enforces the time
// limit and ctx, and reaps the process.
func (p *Process) supervise(ctx context.Context) {
	exited := make(chan error, 1)
	go func() { exited <- p.cmd.Wait() }()
	timer := time.NewTimer(p.limit)
	defer timer.Stop()
	ctxDone := ctx.Done()
	for {
		select {
		case err := <-exited:
			p.finish(err)
			return
		case <-ctxDone:
			ctxDone = nil
			_ = p.KillWithReason(StoppedByClient)
		case <-p.changed:
			p.rearm(timer)
		case <-timer.C:
			p.mu.Lock()
			over := !p.stopped && p.running() >= p.limit
			p.mu.Unlock()
			if over {
				_ = p.KillWithReason(fmt.Sprintf("exceeded its time limit of %s", formatSeconds(p.limit.Seconds())))
			} else {
				p.rearm(timer)
			}
		}
	}
}

// rearm sets the timer to the running time left, or stops it while the
// worker is suspended.
func (p *Process) rearm(timer *time.Timer) {
	p.mu.Lock()
	stopped, left := p.stopped, p.limit-p.running()
	p.mu.Unlock()
	if stopped {
		timer.Stop()
		return
	}
	timer.Reset(max(left, 0))
}

func (p *Process) finish(waitErr error) {
	p.mu.Lock()
	wall := p.running()
	p.exited = true
	reason := p.killReason
	p.mu.Unlock()

	var res Result
	switch {
	case reason != "":
		res = failure(exitNone, reason)
	case json.Unmarshal(p.result.Bytes(), &res) != nil:
		res = failure(exitNone, fmt.Sprintf("the worker process ended without a result (%v)", waitErr))
		if summary := stderrSummary(p.stderr.String()); summary != "" {
			res.Reason += ": " + summary
		}
	}
	if st := p.cmd.ProcessState; st != nil {
		res.CPUSeconds = (st.UserTime() + st.SystemTime()).Seconds()
	}
	res.Wall = wall
	p.res = res
	close(p.done)
}

// limitedWriter keeps at most left bytes and drops the rest, without failing
// the copy that feeds it.
type limitedWriter struct {
	w    io.Writer
	left int64
}

func (l *limitedWriter) Write(p []byte) (int, error) {
	if keep := min(int64(len(p)), l.left); keep > 0 {
		n, err := l.w.Write(p[:keep])
		l.left -= int64(n)
		if err != nil {
			return n, err
		}
	}
	return len(p), nil
}

// feed writes lines to the worker in order until it has ended.
func (p *Process) feed(stdin io.Writer) {
	for {
		select {
		case <-p.done:
			return
		case line := <-p.toWorker:
			if _, err := stdin.Write(line); err != nil {
				return
			}
		}
	}
}

// WorkerMain is the body of the client's hidden worker subcommand, in the
// process that Worker.Start starts. It lowers its own priority, reads one
// Spec as JSON from stdin, runs it, and writes the Result as JSON to stdout;
// the return value is the exit code for the process. It owns the process:
// when stdin ends after the Spec, the daemon has gone, and WorkerMain exits
// the process at once rather than compute a result nobody will collect.
func WorkerMain(stdin io.Reader, stdout io.Writer) int {
	if err := lowerPriority(); err != nil {
		fmt.Fprintf(os.Stderr, "momonga worker: lower priority: %v\n", err)
	}
	return work(stdin, stdout)
}

// work is WorkerMain without the change of priority, which tests skip so
// that workers are not starved by whatever else the machine is running.
func work(stdin io.Reader, stdout io.Writer) int {
	dec := json.NewDecoder(stdin)
	var spec Spec
	if err := dec.Decode(&spec); err != nil {
		fmt.Fprintf(os.Stderr, "momonga worker: read task: %v\n", err)
		return 2
	}
	requests, stop := make(chan struct{}, 1), make(chan struct{}, 1)
	go func() {
		readRequests(io.MultiReader(dec.Buffered(), stdin), requests, stop)
		os.Exit(exitOrphaned)
	}()
	var outMu sync.Mutex
	enc := json.NewEncoder(stdout)
	res := RunControlled(context.Background(), spec, Control{Request: requests, Stop: stop, Written: func(w Written) {
		outMu.Lock()
		defer outMu.Unlock()
		if err := enc.Encode(workerEvent{Checkpoint: &w}); err != nil {
			fmt.Fprintf(os.Stderr, "momonga worker: report checkpoint: %v\n", err)
		}
	}})
	outMu.Lock()
	defer outMu.Unlock()
	if err := enc.Encode(res); err != nil {
		fmt.Fprintf(os.Stderr, "momonga worker: write result: %v\n", err)
		return 2
	}
	return 0
}
