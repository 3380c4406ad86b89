package runner

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/momonga-project/momonga/internal/procstat"
	"github.com/momonga-project/momonga/internal/wait"
	"github.com/momonga-project/momonga/workunits"
)

// testWorker re-executes the test binary as a worker; see TestMain. It does
// not lower its priority, so that the tests do not wait on whatever else the
// machine is running; TestWorkerPriority checks the real WorkerMain.
func testWorker(t *testing.T, arg string) Worker {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	return Worker{Command: []string{exe, arg}}
}

// start starts a worker and makes sure it is gone when the test ends.
func start(t *testing.T, w Worker, ctx context.Context, spec Spec) *Process {
	t.Helper()
	p, err := w.Start(ctx, spec)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = p.Kill()
		p.Wait()
	})
	return p
}

func ended(p *Process) bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// cpuTime reads a running worker's CPU time, skipping the test where that is
// not available.
func cpuTime(t *testing.T, p *Process) time.Duration {
	t.Helper()
	d, err := p.CPUTime()
	if errors.Is(err, errors.ErrUnsupported) {
		t.Skipf("CPU time of a running process is not available on %s", runtime.GOOS)
	}
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func spinSpec(t *testing.T, maxSeconds float64) (Spec, *task) {
	t.Helper()
	tk := newTask(t)
	return tk.spec(writeModule(t, spinModule()), workunits.Limits{MaxSeconds: maxSeconds}), tk
}

func TestWorkerRun(t *testing.T) {
	args := []string{"in", "a worker"}
	spec, tk := echoSpec(t, args...)
	res := start(t, testWorker(t, argWorker), context.Background(), spec).Wait()
	checkEcho(t, res, spec, args...)
	tk.checkHost(t)
}

// TestWorkerTimeLimit runs modules that never end; each is killed when its
// running time reaches the limit, and a normal task runs fine afterwards.
func TestWorkerTimeLimit(t *testing.T) {
	for name, module := range map[string]func(t *testing.T) string{
		"go loop":        func(t *testing.T) string { return goModule(t, "hostile/loop") },
		"wasm loop br 0": func(t *testing.T) string { return writeModule(t, spinModule()) },
	} {
		t.Run(name, func(t *testing.T) {
			tk := newTask(t)
			spec := tk.spec(module(t), workunits.Limits{MaxSeconds: 1})
			began := time.Now()
			res := start(t, testWorker(t, argWorker), context.Background(), spec).Wait()
			elapsed := time.Since(began)
			t.Logf("%+v after %v", res, elapsed)
			if want := "exceeded its time limit of 1s"; !res.Failed || res.ExitCode != exitNone || res.Reason != want {
				t.Errorf("got %+v, want a failure %q", res, want)
			}
			if res.Wall < time.Second || elapsed > 5*time.Second {
				t.Errorf("ran for %v (elapsed %v), want just over 1s", res.Wall, elapsed)
			}
			if res.CPUSeconds < 0.2 {
				t.Errorf("used %gs of CPU; the module should have been spinning", res.CPUSeconds)
			}
			tk.checkHost(t)
		})
	}
	spec, tk := echoSpec(t, "after")
	checkEcho(t, start(t, testWorker(t, argWorker), context.Background(), spec).Wait(), spec, "after")
	tk.checkHost(t)
}

// procState is the state letter of a process in /proc (R, S, T...).
func procState(t *testing.T, pid int) string {
	t.Helper()
	st, err := procstat.Read("/proc", pid)
	if err != nil {
		t.Fatal(err)
	}
	return string(st.State)
}

func TestWorkerSuspendResume(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("reads /proc")
	}
	spec, _ := spinSpec(t, 60)
	began := time.Now()
	p := start(t, testWorker(t, argWorker), context.Background(), spec)
	wait.For(t, 10*time.Second, "the module to spin", func() bool { return cpuTime(t, p) >= 200*time.Millisecond })

	if err := p.Suspend(); err != nil {
		t.Fatal(err)
	}
	wait.For(t, 5*time.Second, "the worker to stop", func() bool { return procState(t, p.Pid()) == "T" })
	stoppedCPU := cpuTime(t, p)
	const stopped = 500 * time.Millisecond
	for end := time.Now().Add(stopped); time.Now().Before(end); time.Sleep(20 * time.Millisecond) {
		if now := cpuTime(t, p); now != stoppedCPU {
			t.Fatalf("CPU time went from %v to %v while suspended", stoppedCPU, now)
		}
	}

	if err := p.Resume(); err != nil {
		t.Fatal(err)
	}
	wait.For(t, 10*time.Second, "the module to spin again", func() bool { return cpuTime(t, p) >= stoppedCPU+100*time.Millisecond })
	if err := p.Kill(); err != nil {
		t.Fatal(err)
	}
	res := p.Wait()
	elapsed := time.Since(began)
	if !res.Failed || res.ExitCode != exitNone || res.Reason != StoppedByClient {
		t.Errorf("got %+v, want a failure %q", res, StoppedByClient)
	}
	if res.Wall > elapsed-stopped {
		t.Errorf("running time %v includes the %v stopped (elapsed %v)", res.Wall, stopped, elapsed)
	}
	if res.CPUSeconds < 0.3 {
		t.Errorf("CPU %gs, want at least the 0.3s seen while it ran", res.CPUSeconds)
	}
	if err := p.Suspend(); !errors.Is(err, os.ErrProcessDone) {
		t.Errorf("Suspend after the end: %v, want os.ErrProcessDone", err)
	}
}

// TestWorkerTimeLimitExcludesStoppedTime suspends a worker with a 1s limit
// for longer than that; it is killed only after a second of running.
func TestWorkerTimeLimitExcludesStoppedTime(t *testing.T) {
	spec, _ := spinSpec(t, 1)
	began := time.Now()
	p := start(t, testWorker(t, argWorker), context.Background(), spec)
	if err := p.Suspend(); err != nil {
		t.Skipf("cannot suspend here: %v", err)
	}
	const stopped = 1500 * time.Millisecond
	for end := time.Now().Add(stopped); time.Now().Before(end); time.Sleep(20 * time.Millisecond) {
		if ended(p) {
			t.Fatalf("killed after %v while suspended: %+v", time.Since(began), p.Wait())
		}
	}
	if err := p.Resume(); err != nil {
		t.Fatal(err)
	}
	res := p.Wait()
	elapsed := time.Since(began)
	t.Logf("%+v after %v", res, elapsed)
	if res.Reason != "exceeded its time limit of 1s" {
		t.Errorf("reason %q", res.Reason)
	}
	if res.Wall < time.Second || res.Wall > 1500*time.Millisecond {
		t.Errorf("running time %v, want just over 1s", res.Wall)
	}
	if elapsed < time.Second+stopped {
		t.Errorf("ended after %v, before 1s of running plus %v stopped", elapsed, stopped)
	}
}

func TestWorkerKill(t *testing.T) {
	t.Run("with a reason", func(t *testing.T) {
		spec, _ := spinSpec(t, 60)
		p := start(t, testWorker(t, argWorker), context.Background(), spec)
		const reason = "the volunteer needs the computer back"
		if err := p.KillWithReason(reason); err != nil {
			t.Fatal(err)
		}
		if err := p.Kill(); err != nil {
			t.Fatal(err)
		}
		if res := p.Wait(); !res.Failed || res.Reason != reason {
			t.Errorf("got %+v, want the first reason %q", res, reason)
		}
		if err := p.Kill(); err != nil {
			t.Errorf("Kill after the end: %v", err)
		}
	})
	t.Run("by the context", func(t *testing.T) {
		spec, _ := spinSpec(t, 60)
		ctx, cancel := context.WithCancel(context.Background())
		p := start(t, testWorker(t, argWorker), ctx, spec)
		cancel()
		if res := p.Wait(); !res.Failed || res.Reason != StoppedByClient {
			t.Errorf("got %+v, want %q", res, StoppedByClient)
		}
	})
}

// TestWorkerCrash shows that a worker dying without a result is a failed
// Result that says so, and that nothing else goes wrong.
func TestWorkerCrash(t *testing.T) {
	spec, _ := spinSpec(t, 60)
	res := start(t, testWorker(t, argCrash), context.Background(), spec).Wait()
	t.Logf("%+v", res)
	if want := "the worker process ended without a result (exit status 2): panic: this worker crashes on purpose"; !res.Failed || res.Reason != want {
		t.Errorf("reason %q, want %q", res.Reason, want)
	}
}

func TestWorkerStartError(t *testing.T) {
	spec, _ := spinSpec(t, 60)
	for _, w := range []Worker{{}, {Command: []string{filepath.Join(t.TempDir(), "no-such-binary")}}} {
		if p, err := w.Start(context.Background(), spec); err == nil {
			p.Kill()
			t.Errorf("%v started", w.Command)
		}
	}
}

// TestWorkerOrphaned starts a worker by hand and closes its stdin, as the
// kernel does when the daemon dies: the worker must end, not spin on.
func TestWorkerOrphaned(t *testing.T) {
	spec, _ := spinSpec(t, 60)
	w := testWorker(t, argWorker)
	cmd := exec.Command(w.Command[0], w.Command[1:]...)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var waitErr error
	exited := make(chan struct{})
	go func() {
		waitErr = cmd.Wait()
		close(exited)
	}()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-exited
	})
	if err := json.NewEncoder(stdin).Encode(spec); err != nil {
		t.Fatal(err)
	}
	if runtime.GOOS == "linux" {
		wait.For(t, 10*time.Second, "the module to spin", func() bool {
			d, err := processCPU(cmd.Process.Pid)
			return err == nil && d >= 100*time.Millisecond
		})
	}
	stdin.Close()
	select {
	case <-exited:
		var exit *exec.ExitError
		if !errors.As(waitErr, &exit) || exit.ExitCode() != exitOrphaned {
			t.Errorf("worker ended with %v, want exit code %d", waitErr, exitOrphaned)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the worker went on after its daemon was gone")
	}
}

// TestWorkerPriority checks that WorkerMain puts every thread of the worker
// at nice 19, SCHED_IDLE and the idle I/O class, without core dumps.
func TestWorkerPriority(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("reads /proc")
	}
	spec, _ := spinSpec(t, 60)
	p := start(t, testWorker(t, argIdleWorker), context.Background(), spec)
	var lowered string
	defer func() { t.Logf("threads (tid:nice/policy/ioclass): %s", lowered) }()
	wait.For(t, 10*time.Second, "every thread to run at the lowest priority", func() bool {
		lowered = threadPriorities(t, p.Pid())
		return !strings.Contains(lowered, "not lowered")
	})
	limits, err := os.ReadFile(fmt.Sprintf("/proc/%d/limits", p.Pid()))
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(string(limits), "\n") {
		if strings.HasPrefix(l, "Max core file size") && !strings.Contains(l, " 0 ") {
			t.Errorf("core dumps still allowed: %s", l)
		}
	}
}

// threadPriorities describes each thread of pid as "tid:nice/policy/ioclass",
// with "not lowered" where one is not at its lowest.
func threadPriorities(t *testing.T, pid int) string {
	t.Helper()
	entries, err := os.ReadDir(fmt.Sprintf("/proc/%d/task", pid))
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range entries {
		tid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		st, err := procstat.Read(fmt.Sprintf("/proc/%d/task", pid), tid)
		if err != nil {
			continue // the thread ended
		}
		nice, _ := st.Field(19)
		policy, _ := st.Field(41)
		ioclass := ioprioClass(tid)
		s := fmt.Sprintf("%s:%s/%s/%d", e.Name(), nice, policy, ioclass)
		if nice != "19" || policy != "5" || ioclass != 3 {
			s += " not lowered"
		}
		out = append(out, s)
	}
	return strings.Join(out, ", ")
}

// TestCompilationCache starts the same Go module in two workers that share a
// fresh cache: the second loads the compiled code instead of compiling ~2 MB
// of wasm again.
func TestCompilationCache(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector makes wazero's compiler about ten times slower; run without -race to measure")
	}
	w := testWorker(t, argWorker)
	cache := filepath.Join(t.TempDir(), "cache")
	var took [2]time.Duration
	for i := range took {
		spec, _ := echoSpec(t)
		spec.CacheDir = cache
		began := time.Now()
		checkEcho(t, start(t, w, context.Background(), spec).Wait(), spec)
		took[i] = time.Since(began)
	}
	t.Logf("start and run in a worker: %v with an empty cache, %v with the module cached", took[0], took[1])
	if entries, err := os.ReadDir(cache); err != nil || len(entries) == 0 {
		t.Fatalf("nothing in the cache directory: %v", err)
	}
	if took[1]*2 > took[0] {
		t.Errorf("cached start took %v, not much faster than %v", took[1], took[0])
	}
}

// TestWorkerMemoryReservedOnce grows a module's memory a page at a time to a
// 1 GiB limit. The memory is reserved once and never copied, so the worker's
// resident memory stays far below the limit; growing by copying made it
// reach several times the limit (NOTES.md).
func TestWorkerMemoryReservedOnce(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("reads /proc")
	}
	tk := newTask(t)
	p := start(t, testWorker(t, argWorker), context.Background(),
		tk.spec(writeModule(t, growSpinModule()), workunits.Limits{MemoryBytes: 1 << 30, MaxSeconds: 60}))
	// Growing takes a few milliseconds; by the time the worker has spun for
	// a while, its memory is at the limit.
	wait.For(t, 10*time.Second, "the module to grow and spin", func() bool { return cpuTime(t, p) >= 300*time.Millisecond })
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", p.Pid()))
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(string(status), "\n") {
		if f := strings.Fields(l); len(f) == 3 && f[0] == "VmRSS:" {
			kb, _ := strconv.Atoi(f[1])
			t.Logf("resident: %d MiB with 1 GiB of wasm memory", kb>>10)
			if kb > 256<<10 {
				t.Errorf("resident memory %d MiB: the memory was copied as it grew", kb>>10)
			}
			return
		}
	}
	t.Fatalf("no VmRSS in /proc/%d/status", p.Pid())
}
