package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"text/tabwriter"

	"github.com/urfave/cli/v2"

	clientbench "github.com/momonga-project/momonga/client/bench"
	"github.com/momonga-project/momonga/client/runner"
	"github.com/momonga-project/momonga/cmd/internal/cliutil"
)

func benchEnginesCommand() *cli.Command {
	return &cli.Command{
		Name:  "engines",
		Usage: "CPU time of the C kernels and the sample apps natively, under plain wazero, and as tasks on each engine of the worker",
		Description: "Each workload runs natively (the C kernels built with clang and the flags of kernels.wasm, the Go\n" +
			"apps with the go command from the repository in the working directory), under wazero's API in this\n" +
			"process, and as a task in the real worker process on each of its engines, in a warm process from\n" +
			"the worker pool with the module compiled, as the client runs its tasks: like plain wazero's, its\n" +
			"time is instantiating and running the module. The worker is --worker, else momonga-worker beside this program, else one built here with\n" +
			"`go build -tags wasmtime ./cmd/momonga-worker` (cgo). Times are CPU time, user + system; speed is\n" +
			"the native build's CPU time over the engine's.",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "worker", Usage: "the worker executable to time (default: see above)"},
			&cli.StringSliceFlag{Name: "apps", Value: cli.NewStringSlice("primes", "mandel", "mandelr", "mandelc"), Usage: "sample apps to time besides the C kernels (none: --apps '')"},
			&cli.StringSliceFlag{Name: "kernels", Value: cli.NewStringSlice(clientbench.KernelNames...), Usage: "C kernels to time"},
			&cli.IntFlag{Name: "runs", Value: 3, Usage: "run each workload this many times each way and keep the least CPU time"},
			&cli.BoolFlag{Name: "json", Usage: "print JSON"},
		},
		Action: benchEngines,
	}
}

func benchEngines(c *cli.Context) error {
	ctx, stop := cliutil.SignalContext(c.Context)
	defer stop()
	list, err := sampleApps(c.StringSlice("apps"))
	if err != nil {
		return err
	}
	root := repositoryRoot()
	tmp, err := os.MkdirTemp("", "momonga-bench-worker-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	worker, engines, err := benchWorker(ctx, c.String("worker"), root, tmp)
	if err != nil {
		return err
	}
	var kernels []string
	for _, k := range c.StringSlice("kernels") {
		if k != "" {
			kernels = append(kernels, k)
		}
	}
	rows, err := clientbench.Engines(ctx, clientbench.EnginesConfig{Worker: worker, Engines: engines, Root: root, Apps: list, Kernels: kernels, Runs: c.Int("runs")})
	if err != nil {
		return err
	}
	if c.Bool("json") {
		return cliutil.PrintJSON(c.App.Writer, map[string]any{"worker": worker.Command[0], "engines": engines, "rows": rows})
	}
	return printEnginesBench(c.App.Writer, engines, rows)
}

// sampleApps looks the named sample apps up.
func sampleApps(names []string) ([]clientbench.SampleApp, error) {
	var list []clientbench.SampleApp
	for _, name := range names {
		found := false
		for _, a := range clientbench.SampleApps {
			if a.Name == name {
				list, found = append(list, a), true
			}
		}
		if !found && name != "" {
			return nil, fmt.Errorf("no sample app %q", name)
		}
	}
	return list, nil
}

// repositoryRoot is the module root the go command sees here, or "".
func repositoryRoot() string {
	if out, err := exec.Command("go", "env", "GOMOD").Output(); err == nil && strings.HasSuffix(strings.TrimSpace(string(out)), "go.mod") {
		return filepath.Dir(strings.TrimSpace(string(out)))
	}
	return ""
}

// benchWorker finds the worker to time and the engines it has, compiled
// ones only: the interpreter is not where a volunteer's tasks run.
func benchWorker(ctx context.Context, given, root, tmp string) (runner.Worker, []string, error) {
	path := given
	if path == "" {
		if exe, err := os.Executable(); err == nil {
			if p := filepath.Join(filepath.Dir(exe), runner.WorkerExecutable); fileExists(p) {
				path = p
			}
		}
	}
	if path == "" {
		if root == "" {
			return runner.Worker{}, nil, fmt.Errorf("no worker: give --worker, or run this in the repository so that one can be built")
		}
		path = filepath.Join(tmp, runner.WorkerExecutable)
		build := exec.CommandContext(ctx, "go", "build", "-tags", "wasmtime", "-o", path, "./cmd/momonga-worker")
		build.Dir = root
		build.Env = append(os.Environ(), "CGO_ENABLED=1")
		if out, err := build.CombinedOutput(); err != nil {
			return runner.Worker{}, nil, fmt.Errorf("build the worker with wasmtime (needs a C compiler: Debian gcc): %v: %s", err, out)
		}
	}
	out, err := exec.CommandContext(ctx, path, "engines").Output()
	if err != nil {
		return runner.Worker{}, nil, fmt.Errorf("%s engines: %w", path, err)
	}
	var engines []string
	for _, e := range strings.Fields(string(out)) {
		if e != runner.EngineWazeroInterpreter {
			engines = append(engines, e)
		}
	}
	return runner.Worker{Command: []string{path, "worker"}}, engines, nil
}

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

func printEnginesBench(out io.Writer, engines []string, rows []clientbench.EngineRow) error {
	w := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
	fmt.Fprintln(w, "CPU time (user + system), least of the runs; speed = native CPU / worker CPU; worker = a task in a warm worker process (the pool's, as the client runs tasks)")
	head := "workload\tnative\tplain wazero"
	for _, e := range engines {
		head += "\tworker " + e
	}
	head += "\tworker/plain wazero"
	for _, e := range engines {
		head += "\tspeed " + e
	}
	fmt.Fprintln(w, head+"\tsame output\tnative build")
	for _, r := range rows {
		native := "-"
		if r.NativeCPU > 0 {
			native = fmt.Sprintf("%.2fs", r.NativeCPU.Seconds())
		}
		line := fmt.Sprintf("%s\t%s\t%.2fs", r.Workload, native, r.PlainCPU.Seconds())
		for _, e := range engines {
			line += fmt.Sprintf("\t%.2fs", r.WorkerCPU[e].Seconds())
		}
		line += fmt.Sprintf("\t%.2f", r.WorkerCPU[runner.EngineWazero].Seconds()/r.PlainCPU.Seconds())
		for _, e := range engines {
			if r.NativeCPU > 0 {
				line += fmt.Sprintf("\t%.2fx", r.NativeCPU.Seconds()/r.WorkerCPU[e].Seconds())
			} else {
				line += "\t-"
			}
		}
		same := "yes"
		if !r.Same {
			same = "NO"
		}
		how := r.Native
		if r.Note != "" {
			how = r.Note
		}
		fmt.Fprintln(w, line+"\t"+same+"\t"+how)
	}
	return w.Flush()
}
