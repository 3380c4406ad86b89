package bench

import (
	"bytes"
	"context"
	"crypto/sha256"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"time"

	"github.com/momonga-project/momonga/apps"
	"github.com/momonga-project/momonga/client/runner"
	"github.com/momonga-project/momonga/workunits"
)

// EngineRow is one workload's CPU time (user + system) built natively, under
// plain wazero in this process, and run as a task by the real worker process
// on each engine: the science a donated CPU-second buys on each.
type EngineRow struct {
	Workload  string                   `json:"workload"`
	Args      []string                 `json:"args,omitempty"`
	Native    string                   `json:"native"` // how the native build was made
	NativeCPU time.Duration            `json:"native_cpu,omitempty"`
	PlainCPU  time.Duration            `json:"plain_wazero_cpu"` // wazero's API in this process, compilation excluded
	WorkerCPU map[string]time.Duration `json:"worker_cpu"`       // by engine: the worker process's whole CPU time, from a warm compilation cache
	// Same is false when a run's output differed from the others' (the
	// native build's included, for the C kernels).
	Same bool   `json:"same"`
	Note string `json:"note,omitempty"`
}

// EnginesConfig says what Engines compares.
type EnginesConfig struct {
	Worker  runner.Worker // the worker whose engines are timed
	Engines []string      // the engines to time it on
	Root    string        // the repository, for the native builds of the Go apps; "" skips them
	Apps    []SampleApp   // the Go and C sample apps to time besides the C kernels
	Kernels []string      // the C kernels to time (kernels.c); nil for all
	// Runs is how many times each workload runs each way, the least CPU
	// time kept: on a shared machine the neighbours only ever add to it.
	Runs int
}

// KernelNames are the C kernels of apps/kernels.
var KernelNames = []string{"int", "matmul", "hash", "float"}

// Engines times the C kernels and the sample apps natively, under plain
// wazero, and in the worker on each engine, all in one run.
func Engines(ctx context.Context, cfg EnginesConfig) ([]EngineRow, error) {
	tmp, err := os.MkdirTemp("", "momonga-bench-engines-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(tmp)
	cache := filepath.Join(tmp, "cache")
	kernelsNative, nativeErr := buildKernels(ctx, tmp)

	type workload struct {
		app    SampleApp
		native func(dir string) (time.Duration, []byte, error)
		how    string
	}
	var list []workload
	kernels := cfg.Kernels
	if kernels == nil {
		kernels = KernelNames
	}
	for _, k := range kernels {
		a := SampleApp{Name: "kernels " + k, Module: apps.Kernels, Args: []string{k}}
		list = append(list, workload{app: a, how: "clang " + fmt.Sprint(apps.KernelsCFlags), native: func(dir string) (time.Duration, []byte, error) {
			if nativeErr != nil {
				return 0, nil, nativeErr
			}
			return runExe(ctx, kernelsNative, a.Args, dir)
		}})
	}
	for _, a := range cfg.Apps {
		list = append(list, workload{app: a, how: "go build " + a.Package, native: func(dir string) (time.Duration, []byte, error) {
			if cfg.Root == "" {
				return 0, nil, fmt.Errorf("no repository given")
			}
			cpu, _, err := runNative(ctx, a, cfg.Root, dir)
			return cpu, nil, err
		}})
	}

	var rows []EngineRow
	for i, w := range list {
		a := w.app
		row := EngineRow{Workload: a.Name, Args: a.Args, Native: w.how, WorkerCPU: map[string]time.Duration{}, Same: true}
		dir := filepath.Join(tmp, fmt.Sprintf("w%d", i))
		if err := os.Mkdir(dir, 0o700); err != nil {
			return nil, err
		}
		module := filepath.Join(dir, "module.wasm")
		if err := os.WriteFile(module, a.Module, 0o600); err != nil {
			return nil, err
		}
		var outputs [][32]byte
		least := func(have *time.Duration, got time.Duration) {
			if *have == 0 || got < *have {
				*have = got
			}
		}
		// The ways take turns, so that a busy spell of the machine does not
		// fall on one of them only.
		for run := 0; run < max(cfg.Runs, 1); run++ {
			cpu, out, err := w.native(dir)
			switch {
			case err != nil:
				row.Note = "no native run: " + err.Error()
			default:
				least(&row.NativeCPU, cpu)
				if out != nil {
					outputs = append(outputs, sha256.Sum256(out))
				}
			}
			cpu, _, err = runWazero(ctx, a, dir)
			if err != nil {
				return nil, fmt.Errorf("%s under wazero: %w", a.Name, err)
			}
			least(&row.PlainCPU, cpu)
			for _, engine := range cfg.Engines {
				cpu, out, err := runWorker(ctx, cfg.Worker, engine, a, module, dir, cache)
				if err != nil {
					return nil, fmt.Errorf("%s in the worker on %s: %w", a.Name, engine, err)
				}
				have := row.WorkerCPU[engine]
				least(&have, cpu)
				row.WorkerCPU[engine] = have
				outputs = append(outputs, sha256.Sum256(out))
			}
		}
		for _, o := range outputs {
			row.Same = row.Same && o == outputs[0]
		}
		rows = append(rows, row)
	}
	return rows, nil
}

// buildKernels builds apps/kernels natively with clang and the flags of
// kernels.wasm.
func buildKernels(ctx context.Context, tmp string) (string, error) {
	src := filepath.Join(tmp, "kernels.c")
	if err := os.WriteFile(src, apps.KernelsSource, 0o600); err != nil {
		return "", err
	}
	exe := filepath.Join(tmp, "kernels-native")
	args := append(append([]string{}, apps.KernelsCFlags...), "-o", exe, src, "-lm")
	if out, err := exec.CommandContext(ctx, "clang", args...).CombinedOutput(); err != nil {
		return "", fmt.Errorf("clang: %v: %s (Debian: apt-get install clang)", err, bytes.TrimSpace(out))
	}
	return exe, nil
}

func runExe(ctx context.Context, exe string, args []string, dir string) (time.Duration, []byte, error) {
	cmd := exec.CommandContext(ctx, exe, args...)
	cmd.Dir = dir
	out, err := cmd.Output()
	if err != nil {
		return 0, nil, err
	}
	st := cmd.ProcessState
	return st.UserTime() + st.SystemTime(), out, nil
}

// runWorker runs a as a task in a warm worker process on engine, as the
// client runs its tasks: a first run with arguments the app refuses at once
// leaves its machine code in the compilation cache and the process in the
// pool with the module compiled, and the task then runs in that process. It
// returns the CPU time the worker counted for the task (instantiating and
// running the module, as plain wazero's figure counts) and its output.
// warmFor is how long the pooled worker waits between the two runs; it ends
// by itself after that.
const warmFor = 10 * time.Second

func runWorker(ctx context.Context, w runner.Worker, engine string, a SampleApp, module, dir, cache string) (time.Duration, []byte, error) {
	w = w.Pooled(1, warmFor)
	run := func(args []string) (runner.Result, []byte, error) {
		taskDir, err := os.MkdirTemp(dir, "task-")
		if err != nil {
			return runner.Result{}, nil, err
		}
		defer os.RemoveAll(taskDir)
		output := filepath.Join(dir, "output-"+engine)
		spec := runner.Spec{Module: module, Name: a.Name, Args: args, Dir: taskDir, Output: output, CacheDir: cache,
			Engine: engine, Limits: workunits.Limits{MaxSeconds: 3600}}
		p, err := w.Start(ctx, spec)
		if err != nil {
			return runner.Result{}, nil, err
		}
		res := p.Wait()
		out, err := os.ReadFile(output)
		return res, out, err
	}
	if _, _, err := run([]string{"no such argument"}); err != nil {
		return 0, nil, err
	}
	res, out, err := run(a.Args)
	if err != nil {
		return 0, nil, err
	}
	if res.Failed {
		return 0, nil, fmt.Errorf("%s", res.Reason)
	}
	if res.Engine != engine {
		return 0, nil, fmt.Errorf("ran on %s", res.Engine)
	}
	return time.Duration(res.CPUSeconds * float64(time.Second)), out, nil
}
