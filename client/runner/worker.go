package runner

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"runtime"
	"runtime/debug"
	"slices"
	"sync"
	"time"
)

// Worker says how to start a worker process: the client binary re-executed
// with its hidden worker subcommand, e.g. {os.Executable(), "worker"}, whose
// body is WorkerMain. A pooled Worker (Pooled) keeps processes warm between
// tasks.
type Worker struct {
	Command []string
	pool    *pool
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
	w     *workerProc
	limit time.Duration
	keep  bool // the worker stays for another task after this one
	// cpuBase is the CPU time a warm worker had used for earlier tasks
	// when this one started.
	cpuBase time.Duration

	changed chan struct{} // Suspend or Resume happened
	done    chan struct{} // closed when res is final

	mu         sync.Mutex
	ran        time.Duration // running time before the current stretch
	since      time.Time     // start of the current running stretch
	stopped    bool
	exited     bool
	killed     bool // a signal to end the process was sent
	killReason string

	res Result

	toWorker chan []byte // lines for the worker after its Spec
	ckpt     checkpoints // what the worker reports of its checkpoints
}

// Start starts a task in a worker process for spec: a warm one from the
// pool when the Worker is pooled and one is idle, else a new one. When ctx
// ends, the worker is killed as if by Kill.
func (w Worker) Start(ctx context.Context, spec Spec) (*Process, error) {
	if len(w.Command) == 0 {
		return nil, errors.New("start worker: no command given")
	}
	spec.Limits = spec.Limits.WithDefaults()
	spec.Keep = w.pool != nil
	msg, err := json.Marshal(spec)
	if err != nil {
		return nil, fmt.Errorf("start worker: encode task: %w", err)
	}
	p := &Process{
		limit:    secondsToDuration(spec.Limits.MaxSeconds),
		keep:     spec.Keep,
		changed:  make(chan struct{}, 1),
		done:     make(chan struct{}),
		toWorker: make(chan []byte, 8),
		ckpt:     checkpoints{notify: make(chan struct{}, 1)},
	}
	var wp *workerProc
	if w.pool != nil {
		if wp = w.pool.take(); wp != nil {
			p.cpuBase, _ = processCPU(wp.cmd.Process.Pid)
		}
	}
	if wp == nil {
		if wp, err = startWorkerProc(w.Command); err != nil {
			return nil, err
		}
	}
	wp.own(p)
	p.w = wp
	p.since = time.Now()
	// The task goes down the pipe, which then stays open for requests: its
	// end tells the worker that the daemon is gone. A write that fails means
	// the worker died first, which Wait reports from its exit status.
	p.toWorker <- append(msg, '\n')
	go p.feed(wp.stdin)
	go p.supervise(ctx, w.pool)
	return p, nil
}

// workerProc is a worker process, which runs one task or, pooled, one
// after another.
type workerProc struct {
	cmd    *exec.Cmd
	stdin  io.WriteCloser
	stderr *stderrCapture // the worker's own stderr: Go runtime crashes
	exited chan struct{}  // closed once the process has ended and its output is read
	err    error          // how it ended

	mu      sync.Mutex
	owner   *Process // the task it runs now
	result  []byte   // the owner's Result line, once written
	results chan struct{}
}

func startWorkerProc(command []string) (*workerProc, error) {
	wp := &workerProc{stderr: newStderrCapture(), exited: make(chan struct{}), results: make(chan struct{}, 1)}
	wp.cmd = exec.Command(command[0], command[1:]...)
	wp.cmd.SysProcAttr = workerAttr()
	wp.cmd.Stdout = &eventWriter{on: wp.event, rest: wp.resultLine}
	wp.cmd.Stderr = wp.stderr
	stdin, err := wp.cmd.StdinPipe()
	if err != nil {
		return nil, fmt.Errorf("start worker: %w", err)
	}
	wp.stdin = stdin
	if err := wp.cmd.Start(); err != nil {
		return nil, fmt.Errorf("start worker %s: %w", command[0], err)
	}
	go func() {
		wp.err = wp.cmd.Wait()
		close(wp.exited)
	}()
	return wp, nil
}

// own makes p the task the worker's output belongs to.
func (wp *workerProc) own(p *Process) {
	wp.mu.Lock()
	wp.owner, wp.result = p, nil
	wp.mu.Unlock()
	select {
	case <-wp.results: // a stale notice
	default:
	}
}

func (wp *workerProc) event(w Written) {
	wp.mu.Lock()
	owner := wp.owner
	wp.mu.Unlock()
	if owner != nil {
		owner.ckpt.add(w)
	}
}

// resultLine takes a line of the worker's stdout that is not an event: the
// owner's Result. Only the first is kept.
func (wp *workerProc) resultLine(line []byte) {
	wp.mu.Lock()
	defer wp.mu.Unlock()
	if wp.result != nil {
		return
	}
	wp.result = append([]byte(nil), line[:min(len(line), resultLimit)]...)
	select {
	case wp.results <- struct{}{}:
	default:
	}
}

func (wp *workerProc) takeResult() []byte {
	wp.mu.Lock()
	defer wp.mu.Unlock()
	return wp.result
}

// end closes the worker's stdin, which ends an idle worker, and reaps it.
func (wp *workerProc) end() {
	wp.stdin.Close()
	go func() {
		select {
		case <-wp.exited:
		case <-time.After(5 * time.Second):
			_ = wp.cmd.Process.Kill()
		}
	}()
}

// pool keeps idle worker processes for the next task, each for a while.
type pool struct {
	max     int
	idleFor time.Duration
	mu      sync.Mutex
	idle    []*workerProc
}

// Pooled returns w keeping up to idle worker processes warm between tasks,
// each for idleFor: a task of a short work unit then starts in a process
// that is already running, with the app's compiled module still in its
// memory, instead of a new process that reads it from the disk cache. A
// client whose slots are empty keeps no process once idleFor has passed.
func (w Worker) Pooled(idle int, idleFor time.Duration) Worker {
	w.pool = &pool{max: idle, idleFor: idleFor}
	return w
}

func (pl *pool) take() *workerProc {
	pl.mu.Lock()
	defer pl.mu.Unlock()
	for len(pl.idle) > 0 {
		wp := pl.idle[len(pl.idle)-1]
		pl.idle = pl.idle[:len(pl.idle)-1]
		select {
		case <-wp.exited:
			continue // died while idle
		default:
			return wp
		}
	}
	return nil
}

// put keeps wp for the next task, or ends it when the pool is full.
func (pl *pool) put(wp *workerProc) {
	wp.own(nil)
	pl.mu.Lock()
	if len(pl.idle) >= pl.max {
		pl.mu.Unlock()
		wp.end()
		return
	}
	pl.idle = append(pl.idle, wp)
	pl.mu.Unlock()
	time.AfterFunc(pl.idleFor, func() {
		pl.mu.Lock()
		i := slices.Index(pl.idle, wp)
		if i >= 0 {
			pl.idle = slices.Delete(pl.idle, i, i+1)
		}
		pl.mu.Unlock()
		if i >= 0 {
			wp.end()
		}
	})
}

// Idle is how many warm worker processes wait for a task.
func (w Worker) Idle() int {
	if w.pool == nil {
		return 0
	}
	w.pool.mu.Lock()
	defer w.pool.mu.Unlock()
	return len(w.pool.idle)
}

func secondsToDuration(s float64) time.Duration {
	d := s * float64(time.Second)
	if d >= float64(1<<63-1) {
		return 1<<63 - 1
	}
	return time.Duration(d)
}

// Pid is the worker's process id.
func (p *Process) Pid() int { return p.w.cmd.Process.Pid }

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
	if err := suspend(p.w.cmd.Process); err != nil {
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
	if err := resume(p.w.cmd.Process); err != nil {
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
	if err := p.w.cmd.Process.Kill(); errors.Is(err, os.ErrProcessDone) {
		return nil // it ended on its own, and its own result stands
	} else if err != nil {
		return fmt.Errorf("kill worker %d: %w", p.Pid(), err)
	}
	p.killed = true
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
	cpu, err := processCPU(p.Pid())
	return max(cpu-p.cpuBase, 0), err
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

// supervise owns the task from Start to its end: it enforces the time limit
// and ctx, and collects the result: at the worker's exit, or, for a worker
// that stays for another task, at its Result line, after which the worker
// goes back to pl.
func (p *Process) supervise(ctx context.Context, pl *pool) {
	timer := time.NewTimer(p.limit)
	defer timer.Stop()
	ctxDone := ctx.Done()
	for {
		select {
		case <-p.w.exited:
			p.finish(p.w.takeResult(), p.w.err, true)
			return
		case <-p.w.results:
			if !p.keep {
				continue // the worker exits next, and its CPU time is then known
			}
			p.mu.Lock()
			reusable := !p.killed && !p.stopped && pl != nil
			p.mu.Unlock()
			p.finish(p.w.takeResult(), nil, false)
			if reusable {
				pl.put(p.w)
			} else {
				p.w.end()
			}
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

// finish settles the task's Result from the worker's Result line. When the
// process has exited, its CPU time is the process's; a task in a worker that
// stays has the CPU time the worker counted for it.
func (p *Process) finish(line []byte, waitErr error, exited bool) {
	p.mu.Lock()
	wall := p.running()
	p.exited = true
	reason := p.killReason
	p.mu.Unlock()

	var res Result
	switch {
	case reason != "":
		res = failure(exitNone, reason)
	case json.Unmarshal(line, &res) != nil:
		res = failure(exitNone, fmt.Sprintf("the worker process ended without a result (%v)", waitErr))
		if summary := stderrSummary(p.w.stderr.String()); summary != "" {
			res.Reason += ": " + summary
		}
	}
	if exited { // ProcessState is written by Wait, which has returned only then
		if st := p.w.cmd.ProcessState; st != nil {
			res.CPUSeconds = (st.UserTime() + st.SystemTime()).Seconds()
		}
	}
	res.Wall = wall
	p.res = res
	close(p.done)
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

// WorkerMainForTests is WorkerMain at the priority the process started
// with, for the tests of packages that run tasks in worker processes: a
// worker at idle priority gets no CPU while anything else on the machine
// wants it, which on a machine running a whole test suite is most of the
// time. Hosts run WorkerMain.
func WorkerMainForTests(stdin io.Reader, stdout io.Writer) int { return work(stdin, stdout) }

// work is WorkerMain without the change of priority, which tests skip so
// that workers are not starved by whatever else the machine is running. A
// Spec that says Keep is followed by the next task's Spec on stdin once its
// Result is written; the worker keeps the modules it compiled in memory for
// those tasks.
func work(stdin io.Reader, stdout io.Writer) int {
	// No garbage collection while a module runs: a collection stops the
	// world, and the goroutine running a module compiled by wazero cannot
	// be stopped until the module calls the host, so another thread would
	// spin for as long as the module computes. What the host calls allocate
	// is little; linear memories are not on the heap (reserveLinear); the
	// limit is the backstop, and each task ends with a collection.
	debug.SetGCPercent(-1)
	debug.SetMemoryLimit(workerHeapLimit)
	specs := make(chan []byte)
	requests, stop := make(chan struct{}, 1), make(chan struct{}, 1)
	go func() {
		readRequests(stdin, specs, requests, stop)
		os.Exit(exitOrphaned)
	}()
	var outMu sync.Mutex
	enc := json.NewEncoder(stdout)
	var modules *compiledCache
	for {
		var spec Spec
		if err := json.Unmarshal(<-specs, &spec); err != nil {
			fmt.Fprintf(os.Stderr, "momonga worker: read task: %v\n", err)
			return 2
		}
		if spec.Keep && modules == nil {
			modules = newCompiledCache()
		}
		res := runControlled(context.Background(), spec, Control{Request: requests, Stop: stop, Written: func(w Written) {
			outMu.Lock()
			defer outMu.Unlock()
			if err := enc.Encode(workerEvent{Checkpoint: &w}); err != nil {
				fmt.Fprintf(os.Stderr, "momonga worker: report checkpoint: %v\n", err)
			}
		}}, modules)
		outMu.Lock()
		err := enc.Encode(res)
		outMu.Unlock()
		if err != nil {
			fmt.Fprintf(os.Stderr, "momonga worker: write result: %v\n", err)
			return 2
		}
		if !spec.Keep {
			return 0
		}
		runtime.GC()
	}
}

// workerHeapLimit is the Go heap at which a worker collects garbage in the
// middle of a task.
const workerHeapLimit = 256 << 20

// readRequests reads the worker's stdin until it ends: task specs (JSON
// objects, one a line) and requests for checkpoints.
func readRequests(r io.Reader, specs chan<- []byte, requests, stop chan struct{}) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), resultLimit)
	for sc.Scan() {
		line := sc.Bytes()
		if len(line) > 0 && line[0] == '{' {
			// A request still pending was for the task before: the pipe
			// carries lines in order.
			for _, ch := range []chan struct{}{requests, stop} {
				select {
				case <-ch:
				default:
				}
			}
			specs <- append([]byte(nil), line...)
			continue
		}
		var ch chan<- struct{}
		switch string(line) {
		case requestCheckpoint:
			ch = requests
		case requestStop:
			ch = stop
		default:
			continue
		}
		select {
		case ch <- struct{}{}:
		default: // one is pending already
		}
	}
}
