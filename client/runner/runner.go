// Package runner runs one task's WebAssembly module on a volunteer's host:
// the "runner: wazero sandbox" box of the client in DESIGN.md §1, following
// §6 ("Applications and portable checkpoints") and §7.
//
// A module is an untrusted WASI preview 1 command, or a reactor that exports
// `step`. Run executes it with wazero inside the current process: its
// arguments, a stdin file, stdout written to the result file and capped,
// stderr kept in memory for the failure reason, its own directory preopened
// as "/" that no path or link can leave, a memory cap, no host environment,
// no network, and virtual clocks and a random stream keyed by the work unit
// (host.go), so that replicas on different hosts compute the same result.
//
// With a CheckpointSpec, a run checkpoints itself (checkpoints.go): a
// reactor by memory snapshots between two calls of step (linear memory,
// mutable globals and all of the host state above), a command module
// through the SDK's state file; and it can start from a checkpoint made on
// any host, on any CPU.
//
// Run cannot stop a module that never returns without making every loop of
// every module several times slower (NOTES.md), so the daemon does not call
// it itself: Worker.Start re-executes the client binary as a worker process
// that calls WorkerMain, and the resulting Process is what the daemon
// suspends, resumes and kills, with the time limit counted on its own clock.
// A crash of the module, of wazero or of the worker process is a failed
// Result, never a failure of the daemon.
package runner

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"math"
	"os"
	"runtime"
	"slices"
	"strings"
	"time"

	"github.com/tetratelabs/wazero/api"
	"github.com/tetratelabs/wazero/sys"

	"github.com/momonga-project/momonga/client/runner/wasi"
	"github.com/momonga-project/momonga/workunits"
)

// Spec is one run of a module. It crosses the pipe to the worker process as
// JSON; fields are only ever added, because a worker started from an upgraded
// binary may read what an older daemon wrote.
type Spec struct {
	Module   string           `json:"module"`          // path of the .wasm file, already verified by hash
	Name     string           `json:"name"`            // argv[0] seen by the module
	Args     []string         `json:"args,omitempty"`  // argv[1:]
	Stdin    string           `json:"stdin,omitempty"` // path of a file given as stdin; "" for empty stdin
	Dir      string           `json:"dir"`             // the task's private directory (it exists), "/" in the guest
	Output   string           `json:"output"`          // where stdout, the result, is written
	Limits   workunits.Limits `json:"limits"`          // unset limits take workunits' defaults
	CacheDir string           `json:"cache,omitempty"` // compilation cache shared by workers; "" for none
	// Engine names the engine to run on (Engines); "" for the fastest this
	// worker has, falling back to wazero for a module that engine refuses.
	Engine string `json:"engine,omitempty"`
	// Keep has the worker process wait for another task once this one's
	// Result is written (Worker.Pooled).
	Keep bool `json:"keep,omitempty"`
	// Seed keys the task's random stream (the same for every replica of a
	// work unit, so that they compute the same result); "" for a fixed one.
	Seed string `json:"seed,omitempty"`
	// Checkpoint, when set, has the run checkpoint itself and maybe start
	// from a checkpoint (checkpoints.go).
	Checkpoint *CheckpointSpec `json:"checkpoint,omitempty"`
}

// Result is how a run ended.
type Result struct {
	ExitCode   int           `json:"exit_code"`        // the module's exit code; -1 when it did not exit by itself
	Failed     bool          `json:"failed"`           // true unless the module exited 0 within every limit
	Reason     string        `json:"reason,omitempty"` // for a failure, one sentence saying why
	Stderr     string        `json:"stderr,omitempty"` // the start and end of the module's stderr, at most StderrKept bytes
	CPUSeconds float64       `json:"cpu_seconds"`      // user+sys of the worker process, or of this process during Run
	Wall       time.Duration `json:"wall"`             // running time, not counting time stopped
	Engine     string        `json:"engine,omitempty"` // the engine the module ran on
	// Stopped is set when the run ended because the caller asked it to stop
	// after a checkpoint (Control.Stop): the task is not done, it is
	// continued from that checkpoint.
	Stopped bool `json:"stopped,omitempty"`
	// Resumed says where the run started from a checkpoint, or why the
	// checkpoint it was given could not be used.
	Resumed *Resumed `json:"resumed,omitempty"`
	// Checkpoints counts the checkpoints written; Notes lists what went
	// wrong with them, if anything.
	Checkpoints int      `json:"checkpoints,omitempty"`
	Notes       []string `json:"notes,omitempty"`
}

// exitNone is Result.ExitCode when the module did not exit by itself: it was
// stopped, trapped or never started.
const exitNone = -1

const wasiModule = wasi.ModuleName

// Run runs spec's module in this process and returns how it ended. It does
// not interrupt a module that never returns (ctx is only passed on to
// wazero): that is the worker process's job, see Worker. Run recovers from
// any panic, so a module cannot take the calling process down with one.
func Run(ctx context.Context, spec Spec) (res Result) {
	return RunControlled(ctx, spec, Control{})
}

// RunControlled is Run with a line to the caller for checkpoints.
func RunControlled(ctx context.Context, spec Spec, ctl Control) (res Result) {
	return runControlled(ctx, spec, ctl, nil)
}

// runControlled is RunControlled keeping compiled modules in modules, when
// it is not nil, for the runs after this one.
func runControlled(ctx context.Context, spec Spec, ctl Control, modules *compiledCache) (res Result) {
	start := time.Now()
	cpuStart := selfCPU()
	defer func() {
		if r := recover(); r != nil {
			res = failure(exitNone, fmt.Sprintf("the runner failed: %v", r))
		}
		res.Wall = time.Since(start)
		res.CPUSeconds = (selfCPU() - cpuStart).Seconds()
	}()
	return run(ctx, spec, ctl, cpuStart, modules)
}

func failure(code int, reason string) Result {
	return Result{ExitCode: code, Failed: true, Reason: reason}
}

func run(ctx context.Context, spec Spec, ctl Control, cpuStart time.Duration, modules *compiledCache) Result {
	limits := spec.Limits.WithDefaults()
	wasm, err := os.ReadFile(spec.Module)
	if err != nil {
		return failure(exitNone, fmt.Sprintf("could not read the module: %v", err))
	}
	if st, err := os.Stat(spec.Dir); err != nil || !st.IsDir() {
		return failure(exitNone, fmt.Sprintf("the task directory %q is missing", spec.Dir))
	}
	engineName, err := pickEngine(spec)
	if err != nil {
		return failure(exitNone, err.Error())
	}
	module, err := workunits.ParseModule(wasm)
	if err != nil {
		return failure(exitNone, fmt.Sprintf("the module is not valid WebAssembly: %v", err))
	}
	if reason := checkImports(module); reason != "" {
		return failure(exitNone, reason)
	}
	comp, release, err := modules.compile(ctx, engineName, wasm, spec.CacheDir)
	if err != nil && engineName != EngineWazero && spec.Engine == "" {
		// The faster engine could not take this module: wazero runs it.
		if fallback, frelease, ferr := modules.compile(ctx, EngineWazero, wasm, spec.CacheDir); ferr == nil {
			engineName, comp, release, err = EngineWazero, fallback, frelease, nil
		}
	}
	if err != nil {
		return failure(exitNone, fmt.Sprintf("the module is not valid WebAssembly: %v", err))
	}
	defer release()
	reactor := module.IsReactor()
	if reactor {
		if params, results, _ := comp.exportedFunc("step"); len(params) != 0 || !slices.Equal(results, []api.ValueType{api.ValueTypeI32}) {
			return failure(exitNone, "the module's step function must take nothing and return an i32")
		}
	} else if params, results, ok := comp.exportedFunc("_start"); !ok || len(params) != 0 || len(results) != 0 {
		return failure(exitNone, "the module has no _start function: momonga runs WASI command modules and reactors that export step")
	}
	if need, ok := initialMemory(wasm); ok && need > uint64(limits.MemoryBytes) {
		return failure(exitNone, fmt.Sprintf("memory limit of %s reached: the module needs %s at start",
			formatBytes(limits.MemoryBytes), formatBytes(int64(need))))
	}

	out, err := os.OpenFile(spec.Output, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return failure(exitNone, fmt.Sprintf("could not create the output file on this computer: %v", err))
	}
	defer out.Close()
	t := &taskRun{
		spec: spec, limits: limits, module: module, compiled: comp, out: out, ctl: ctl,
		buffered: bufio.NewWriterSize(out, 64<<10), stderr: newStderrCapture(), hooks: &fsHooks{}, cpuStart: cpuStart,
	}
	t.stdout = &cappedOutput{w: t.buffered, limit: limits.OutputBytes}
	if spec.Stdin != "" {
		in, err := os.Open(spec.Stdin)
		if err != nil {
			return failure(exitNone, fmt.Sprintf("could not open the input file on this computer: %v", err))
		}
		defer in.Close()
		t.stdin = in
	}
	t.resetHost()

	// A garbage collection still under way when the module starts (the
	// compilation allocates plenty) would, to finish, stop the world, which
	// waits for the module's goroutine to call the host: another thread
	// spins meanwhile, for as long as a CPU-bound module computes. Finish
	// it now; the worker starts no other (work).
	runtime.GC()

	var res Result
	if reactor {
		res = t.runReactor(ctx)
	} else {
		res = t.runCommand(ctx)
	}
	// What a failed module wrote is kept too: it may show how far it got.
	if err := t.buffered.Flush(); err != nil && !res.Failed {
		res = failure(res.ExitCode, fmt.Sprintf("could not write the output on this computer: %v", err))
	}
	res.Resumed, res.Checkpoints, res.Notes = t.resumed, t.written, t.notes
	res.Engine = engineName
	return res
}

// runCommand runs a command module's _start, with app checkpoints when the
// spec asks for checkpoints.
func (t *taskRun) runCommand(ctx context.Context) Result {
	if t.spec.Checkpoint != nil {
		stop := t.startAppCheckpoints(ctx)
		defer stop()
	}
	inst, err := t.instantiate(ctx)
	started := err == nil
	if started {
		defer inst.close(ctx)
		_, err = inst.call(ctx, "_start")
	}
	return t.outcome(err, started)
}

// outcome is outcome for this run, with the memory limit's part told.
func (t *taskRun) outcome(err error, started bool) Result {
	res, fault := outcome(err, started, t.stderr.String())
	if t.inst == nil {
		return res
	}
	if memReason, hit := t.inst.memoryRefused(); fault && hit {
		res.Reason = memReason + ", then " + res.Reason
	}
	return res
}

// outcome turns what wazero returned into a Result. fault is set when the
// module itself gave up (a non-zero exit or a trap), which may be how it met
// the memory limit. The exit code is the module's to choose, so it never
// decides whether a limit was hit: a module may exit with the very code
// wazero uses for a deadline.
func outcome(err error, started bool, stderr string) (res Result, fault bool) {
	defer func() { res.Stderr = stderr }()
	var exit *sys.ExitError
	var stop *stopError
	var trap *trapError
	switch {
	case err == nil:
		return Result{}, false
	case errors.As(err, &stop):
		res := failure(exitNone, stop.reason)
		res.Stopped = stop.stopped
		return res, false
	case errors.As(err, &exit):
		code := exit.ExitCode()
		if code == 0 {
			return Result{}, false
		}
		reason := fmt.Sprintf("exit code %d", code)
		if summary := stderrSummary(stderr); summary != "" {
			reason += ": " + summary
		}
		return failure(int(code), reason), true
	case errors.As(err, &trap) && trap.stackOverflow:
		return failure(exitNone, "the module ran out of stack (recursion too deep)"), true
	case errors.As(err, &trap):
		return failure(exitNone, "the module crashed (wasm trap: "+trap.msg+")"), true
	}
	msg, _, _ := strings.Cut(err.Error(), "\n")
	if !started {
		return failure(exitNone, "the module could not be started: "+msg), false
	}
	return failure(exitNone, "the module failed: "+msg), true
}

// checkImports refuses a module that imports anything momonga does not
// provide, naming the import, before any engine sees it: an engine would
// only fail at instantiation, with a message about its own modules. Stubbing
// an unknown import is never right: the module would compute something other
// than what its author meant. The WASI functions are the same set on every
// engine (wasi.Functions).
func checkImports(module *workunits.Module) string {
	for _, im := range module.Imports {
		switch im.Kind {
		case 0:
			if im.Module == wasiModule && wasiNames[im.Name] {
				continue
			}
			return fmt.Sprintf("module imports %s.%s, which momonga does not provide", im.Module, im.Name)
		case 2:
			return fmt.Sprintf("module imports memory %s.%s, which momonga does not provide (modules must define their own memory)", im.Module, im.Name)
		default:
			return fmt.Sprintf("module imports %s.%s, which momonga does not provide", im.Module, im.Name)
		}
	}
	return ""
}

// wasiNames are the WASI functions a module may import.
var wasiNames = func() map[string]bool {
	names := map[string]bool{}
	for _, f := range wasi.Functions() {
		names[f.Name] = true
	}
	return names
}()

// formatSeconds writes a time limit the way a person would: 5s, 1.5s, 2m, 1h.
func formatSeconds(s float64) string {
	if s*float64(time.Second) >= math.MaxInt64 {
		return fmt.Sprintf("%gs", s)
	}
	str := time.Duration(s * float64(time.Second)).Round(time.Millisecond).String()
	str, _ = strings.CutSuffix(str, "m0s")
	if trimmed, ok := strings.CutSuffix(str, "h0"); ok {
		return trimmed + "h"
	}
	if !strings.HasSuffix(str, "s") {
		str += "m"
	}
	return str
}
