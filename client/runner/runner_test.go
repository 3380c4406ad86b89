package runner

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/momonga-project/momonga/apps"
	"github.com/momonga-project/momonga/workunits"
)

// The test binary doubles as the worker (and as a worker that crashes):
// TestMain looks at its first argument before the testing flags are parsed.
const (
	argWorker     = "momonga-runner-test-worker"
	argIdleWorker = "momonga-runner-test-idle-worker"
	argCrash      = "momonga-runner-test-crash"
)

var (
	testTmp   string // removed when the tests end
	cacheDir  string // compilation cache shared by the tests, as by a client's workers
	buildOnce sync.Once
	buildErr  error
)

// goFixtures are the Go programs under testdata, built for wasip1 once.
var goFixtures = []string{"echo", "appckpt", "hostile/loop", "hostile/memory", "hostile/recurse", "hostile/flood", "hostile/escape"}

func TestMain(m *testing.M) {
	if len(os.Args) > 1 {
		switch os.Args[1] {
		case argWorker:
			os.Exit(work(os.Stdin, os.Stdout))
		case argIdleWorker:
			os.Exit(WorkerMain(os.Stdin, os.Stdout))
		case argCrash:
			panic("this worker crashes on purpose")
		}
	}
	var err error
	testTmp, err = os.MkdirTemp("", "momonga-runner-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	cacheDir = filepath.Join(testTmp, "cache")
	code := m.Run()
	os.RemoveAll(testTmp)
	os.Exit(code)
}

// goModule returns the path of a Go fixture built for GOOS=wasip1. The first
// call builds all of them in one go command and compiles them into the
// shared cache with testdata/precompile.
func goModule(t *testing.T, name string) string {
	t.Helper()
	buildOnce.Do(func() { buildErr = buildFixtures() })
	if errors.Is(buildErr, exec.ErrNotFound) {
		t.Skip("the go command is needed to build the wasm fixtures")
	}
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return fixturePath(name)
}

func fixturePath(name string) string {
	return filepath.Join(testTmp, "wasm", filepath.Base(name))
}

func buildFixtures() error {
	goCmd, err := exec.LookPath("go")
	if err != nil {
		return err
	}
	run := func(cmd *exec.Cmd) error {
		if out, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("%s: %v\n%s", strings.Join(cmd.Args, " "), err, out)
		}
		return nil
	}
	args := []string{"build", "-o", filepath.Join(testTmp, "wasm") + string(filepath.Separator)}
	for _, f := range goFixtures {
		args = append(args, "./testdata/"+f)
	}
	wasip1 := exec.Command(goCmd, args...)
	wasip1.Env = append(os.Environ(), "GOOS=wasip1", "GOARCH=wasm")
	precompile := filepath.Join(testTmp, "precompile")
	// A test binary carries no build information about its dependencies,
	// so wazero names its cache after version "dev" in the tests; the
	// helper must write there too.
	const devVersion = "-ldflags=-X=github.com/tetratelabs/wazero/internal/version.version=dev"
	if err := errors.Join(run(wasip1), run(exec.Command(goCmd, "build", devVersion, "-o", precompile, "./testdata/precompile"))); err != nil {
		return err
	}
	args = []string{cacheDir}
	for _, f := range goFixtures {
		args = append(args, fixturePath(f))
	}
	// The sample reactors, as `app add` publishes them, are compiled too.
	for name, wasm := range map[string][]byte{"mandelr": apps.MandelR, "mandelc": apps.MandelC} {
		prepared, err := workunits.PrepareModule(wasm)
		if err != nil {
			return err
		}
		if err := os.WriteFile(fixturePath(name), prepared, 0o600); err != nil {
			return err
		}
		args = append(args, fixturePath(name))
	}
	return run(exec.Command(precompile, args...))
}

// writeModule stores a hand-assembled module in a file.
func writeModule(t *testing.T, wasm []byte) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "module.wasm")
	if err := os.WriteFile(path, wasm, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// task is a task directory with things next to it that no module may reach:
//
//	parent/canary          a file with known content
//	parent/outside/canary  another, in a directory of its own
//	parent/task/           the task's directory
//
// The output file lives in a directory of its own, so that parent must look
// exactly the same after any run.
type task struct {
	parent, dir, output string
	before, outside     []string
}

const canaryContent = "canary: nothing may read, change or replace this\n"

func newTask(t *testing.T) *task {
	t.Helper()
	tk := &task{parent: t.TempDir()}
	tk.dir = filepath.Join(tk.parent, "task")
	tk.output = filepath.Join(t.TempDir(), "output")
	for _, d := range []string{tk.dir, filepath.Join(tk.parent, "outside")} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for _, f := range []string{filepath.Join(tk.parent, "canary"), filepath.Join(tk.parent, "outside", "canary")} {
		if err := os.WriteFile(f, []byte(canaryContent), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	tk.before = listDir(t, tk.parent)
	tk.outside = listDir(t, filepath.Join(tk.parent, "outside"))
	return tk
}

func listDir(t *testing.T, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	return names
}

func (tk *task) spec(module string, limits workunits.Limits) Spec {
	return Spec{Module: module, Name: filepath.Base(module), Dir: tk.dir, Output: tk.output, Limits: limits, CacheDir: cacheDir}
}

// checkHost fails the test if anything outside the task directory changed.
func (tk *task) checkHost(t *testing.T) {
	t.Helper()
	for _, f := range []string{filepath.Join(tk.parent, "canary"), filepath.Join(tk.parent, "outside", "canary")} {
		st, err := os.Lstat(f)
		if err != nil || !st.Mode().IsRegular() {
			t.Errorf("%s is no longer a regular file (%v)", f, err)
			continue
		}
		if b, err := os.ReadFile(f); err != nil || string(b) != canaryContent {
			t.Errorf("%s changed: %q, %v", f, b, err)
		}
	}
	if got := listDir(t, tk.parent); !slices.Equal(got, tk.before) {
		t.Errorf("next to the task directory: %v, want %v", got, tk.before)
	}
	if got := listDir(t, filepath.Join(tk.parent, "outside")); !slices.Equal(got, tk.outside) {
		t.Errorf("in the outside directory: %v, want %v", got, tk.outside)
	}
}

// echoSpec is a run of the well-behaved fixture with arguments, stdin and an
// input file; echoOutput is what it must print.
func echoSpec(t *testing.T, args ...string) (Spec, *task) {
	t.Helper()
	tk := newTask(t)
	if err := os.WriteFile(filepath.Join(tk.dir, "input.txt"), []byte("some input"), 0o644); err != nil {
		t.Fatal(err)
	}
	stdin := filepath.Join(t.TempDir(), "stdin")
	if err := os.WriteFile(stdin, []byte("hello stdin"), 0o644); err != nil {
		t.Fatal(err)
	}
	spec := tk.spec(goModule(t, "echo"), workunits.Limits{MemoryBytes: 64 << 20, OutputBytes: 1 << 20, MaxSeconds: 60})
	spec.Args = args
	spec.Stdin = stdin
	return spec, tk
}

func echoOutput(args ...string) string {
	return fmt.Sprintf("argv0=echo\nargs=%s\nstdin=hello stdin\ninput=some input\nenv=0\n", strings.Join(args, ","))
}

// checkEcho checks a successful run of echoSpec.
func checkEcho(t *testing.T, res Result, spec Spec, args ...string) {
	t.Helper()
	if res.Failed || res.ExitCode != 0 || res.Reason != "" {
		t.Fatalf("echo failed: %+v", res)
	}
	if out, err := os.ReadFile(spec.Output); err != nil || string(out) != echoOutput(args...) {
		t.Errorf("output %q, %v; want %q", out, err, echoOutput(args...))
	}
	if b, err := os.ReadFile(filepath.Join(spec.Dir, "written.txt")); err != nil || string(b) != "SOME INPUT" {
		t.Errorf("file written by the module: %q, %v", b, err)
	}
	if res.Wall <= 0 || res.CPUSeconds <= 0 {
		t.Errorf("no time measured: wall %v, cpu %gs", res.Wall, res.CPUSeconds)
	}
}

// checkNormalRun shows that the runner still works after whatever the test
// did before.
func checkNormalRun(t *testing.T, engine string) {
	t.Helper()
	spec, tk := echoSpec(t, "after")
	spec.Engine = engine
	checkEcho(t, Run(context.Background(), spec), spec, "after")
	tk.checkHost(t)
}

func TestRunNormal(t *testing.T) {
	forEachEngine(t, func(t *testing.T, engine string) {
		args := []string{"a", "b c", ""}
		spec, tk := echoSpec(t, args...)
		spec.Engine = engine
		res := Run(context.Background(), spec)
		checkEcho(t, res, spec, args...)
		tk.checkHost(t)
		if res.Engine != engine {
			t.Errorf("ran on %q, want %q", res.Engine, engine)
		}
	})
}

func TestRunExitCode(t *testing.T) {
	spec, tk := echoSpec(t, "fail")
	res := Run(context.Background(), spec)
	if !res.Failed || res.ExitCode != 3 {
		t.Fatalf("got %+v, want a failure with exit code 3", res)
	}
	if want := "exit code 3: first line | asked to fail"; res.Reason != want {
		t.Errorf("reason %q, want %q", res.Reason, want)
	}
	if !strings.Contains(res.Stderr, "asked to fail") {
		t.Errorf("stderr %q", res.Stderr)
	}
	tk.checkHost(t)
}

// TestRunHostile runs modules that attack the host, each of which must end
// as a clear failure with everything outside its directory untouched, and
// the runner still working afterwards.
func TestRunHostile(t *testing.T) {
	const memLimit = 64 << 20
	deadlineCode := uint32(0xefffffff) // what wazero's own deadline exits with
	tests := []struct {
		name   string
		module func(t *testing.T) string
		limits workunits.Limits
		reason string // the start of the reason
		code   int
		then   string // the end of the reason, if it matters
	}{
		{"go allocates without end", func(t *testing.T) string { return goModule(t, "hostile/memory") },
			workunits.Limits{MemoryBytes: memLimit}, "memory limit of 64 MiB reached (", 2, "fatal error: out of memory"},
		{"wasm grows memory without end", func(t *testing.T) string { return writeModule(t, growModule(-1)) },
			workunits.Limits{MemoryBytes: memLimit}, "memory limit of 64 MiB reached (", exitNone, "), then the module crashed (wasm trap: unreachable)"},
		// A declared maximum above the limit does not stop a module from
		// running, but the limit still holds.
		{"wasm declares 4 GiB and grows without end", func(t *testing.T) string { return writeModule(t, growModule(1<<16)) },
			workunits.Limits{MemoryBytes: memLimit}, "memory limit of 64 MiB reached (", exitNone, "), then the module crashed (wasm trap: unreachable)"},
		// Reaching its own declared maximum is the module's business.
		{"wasm grows to its own maximum", func(t *testing.T) string { return writeModule(t, growModule(2)) },
			workunits.Limits{MemoryBytes: memLimit}, "the module crashed (wasm trap: unreachable)", exitNone, ""},
		{"wasm asks for too much memory at start", func(t *testing.T) string { return writeModule(t, bigMemoryModule(2000)) },
			workunits.Limits{MemoryBytes: memLimit}, "memory limit of 64 MiB reached: the module needs 125 MiB at start", exitNone, ""},
		{"go recurses without end", func(t *testing.T) string { return goModule(t, "hostile/recurse") },
			workunits.Limits{MemoryBytes: memLimit}, "memory limit of 64 MiB reached (", 2, "fatal error: out of memory"},
		{"wasm recurses without end", func(t *testing.T) string { return writeModule(t, recurseModule()) },
			workunits.Limits{}, "the module ran out of stack (recursion too deep)", exitNone, ""},
		{"go floods stdout", func(t *testing.T) string { return goModule(t, "hostile/flood") },
			workunits.Limits{OutputBytes: 1 << 20}, "wrote more than 1 MiB of output", exitNone, ""},
		{"imports a function nobody provides", func(t *testing.T) string { return writeModule(t, importModule("env", "nothere")) },
			workunits.Limits{}, "module imports env.nothere, which momonga does not provide", exitNone, ""},
		{"imports a WASI function that does not exist", func(t *testing.T) string {
			return writeModule(t, importModule("wasi_snapshot_preview1", "sock_listen"))
		}, workunits.Limits{}, "module imports wasi_snapshot_preview1.sock_listen, which momonga does not provide", exitNone, ""},
		{"imports its memory", func(t *testing.T) string { return writeModule(t, importMemoryModule()) },
			workunits.Limits{}, "module imports memory env.memory, which momonga does not provide", exitNone, ""},
		{"has no _start", func(t *testing.T) string { return writeModule(t, noStartModule()) },
			workunits.Limits{}, "the module has no _start function", exitNone, ""},
		{"is not wasm", func(t *testing.T) string { return writeModule(t, []byte("#!/bin/sh\nrm -rf /\n")) },
			workunits.Limits{}, "the module is not valid WebAssembly", exitNone, ""},
		// A module may exit with the code wazero uses for a deadline; that
		// is an exit code, not a timeout.
		{"exits with wazero's deadline code", func(t *testing.T) string { return writeModule(t, exitModule(0xefffffff)) },
			workunits.Limits{}, "exit code 4026531839", int(deadlineCode), ""},
	}
	forEachEngine(t, func(t *testing.T, engine string) {
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				tk := newTask(t)
				start := time.Now()
				spec := tk.spec(tt.module(t), tt.limits)
				spec.Engine = engine
				res := Run(context.Background(), spec)
				t.Logf("%v: %s", time.Since(start).Round(time.Millisecond), res.Reason)
				if !res.Failed || res.ExitCode != tt.code || !strings.HasPrefix(res.Reason, tt.reason) || !strings.HasSuffix(res.Reason, tt.then) {
					t.Errorf("got exit code %d, reason %q; want a failure with exit code %d and a reason starting %q, ending %q",
						res.ExitCode, res.Reason, tt.code, tt.reason, tt.then)
				}
				if st, err := os.Stat(tk.output); err == nil && st.Size() > tt.limits.WithDefaults().OutputBytes {
					t.Errorf("%d bytes of output, over the limit", st.Size())
				}
				tk.checkHost(t)
			})
		}
		checkNormalRun(t, engine)
	})
}

// forEachEngine runs a test on every compiling engine this binary has:
// wazero's compiler, and wasmtime in a build with the wasmtime tag.
func forEachEngine(t *testing.T, test func(t *testing.T, engine string)) {
	for _, engine := range Engines() {
		if engine == EngineWazeroInterpreter {
			continue
		}
		t.Run(engine, func(t *testing.T) { test(t, engine) })
	}
}

// TestRunEscape runs a module that tries every way out of its directory
// through raw WASI calls, with two symlinks planted in the directory as a
// badly unpacked input might leave them.
func TestRunEscape(t *testing.T) {
	reports := map[string]string{}
	forEachEngine(t, func(t *testing.T, engine string) {
		tk := newTask(t)
		for link, target := range map[string]string{"planted": "../canary", "planteddir": "../outside"} {
			if err := os.Symlink(target, filepath.Join(tk.dir, link)); err != nil {
				t.Fatal(err)
			}
		}
		spec := tk.spec(goModule(t, "hostile/escape"), workunits.Limits{})
		spec.Engine = engine
		res := Run(context.Background(), spec)
		out, err := os.ReadFile(tk.output)
		if err != nil {
			t.Fatal(err)
		}
		reports[engine] = string(out)
		t.Logf("the module's report:\n%s\nstderr: %s\nreason: %s", out, res.Stderr, res.Reason)
		if want := "exit code 3: every escape was refused"; !res.Failed || res.ExitCode != 3 || res.Reason != want {
			t.Errorf("got exit code %d, reason %q; want 3, %q", res.ExitCode, res.Reason, want)
		}
		lines := strings.Split(strings.TrimSpace(string(out)), "\n")
		if len(lines) < 20 {
			t.Fatalf("only %d attempts reported", len(lines))
		}
		for _, l := range lines {
			if !strings.Contains(l, ": refused ") {
				t.Errorf("not refused: %s", l)
			}
		}
		tk.checkHost(t)
		// Inside, only what the module may make: its own file and directory.
		if got, want := listDir(t, tk.dir), []string{"own.txt", "planted", "planteddir", "sub"}; !slices.Equal(got, want) {
			t.Errorf("task directory holds %v, want %v", got, want)
		}
		checkNormalRun(t, engine)
	})
	// Every engine refuses every attempt with the same error.
	for engine, report := range reports {
		if want := reports[EngineWazero]; report != want {
			t.Errorf("%s's refusals differ from wazero's:\n%s\nwazero:\n%s", engine, report, want)
		}
	}
}

func TestLimitWording(t *testing.T) {
	for in, want := range map[float64]string{1: "1s", 1.5: "1.5s", 90: "1m30s", 120: "2m", 3600: "1h", 5400: "1h30m", 86400: "24h"} {
		if got := formatSeconds(in); got != want {
			t.Errorf("formatSeconds(%g) = %q, want %q", in, got, want)
		}
	}
	for in, want := range map[int64]string{1 << 20: "1 MiB", 64 << 20: "64 MiB", 4 << 30: "4 GiB", 4 << 10: "4 KiB", 1000: "1000 bytes", 67_174_400: "64.1 MiB"} {
		if got := formatBytes(in); got != want {
			t.Errorf("formatBytes(%d) = %q, want %q", in, got, want)
		}
	}
}
