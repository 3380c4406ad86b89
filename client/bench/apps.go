package bench

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"time"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/imports/wasi_snapshot_preview1"

	"github.com/momonga-project/momonga/apps"
)

// AppRow compares one sample app under wazero with the same computation
// built natively, by CPU time (user + system): on a shared machine wall time
// measures the neighbours as much as the app.
type AppRow struct {
	App        string        `json:"app"`
	Args       []string      `json:"args,omitempty"`
	WazeroCPU  time.Duration `json:"wazero_cpu"` // compilation excluded
	WazeroWall time.Duration `json:"wazero_wall"`
	Native     string        `json:"native"` // what the native run is
	NativeCPU  time.Duration `json:"native_cpu,omitempty"`
	NativeWall time.Duration `json:"native_wall,omitempty"`
	Ratio      float64       `json:"ratio,omitempty"` // wazero CPU / native CPU
	Note       string        `json:"note,omitempty"`
}

// SampleApp is one of the apps Apps can run.
type SampleApp struct {
	Name    string
	Module  []byte
	Reactor bool
	Args    []string
	Package string // the Go package of the native build, relative to the repository's root
}

// SampleApps are the sample apps with their benchmark arguments: primes on
// the demo's whole range, the mandel family on their default tile.
var SampleApps = []SampleApp{
	{Name: "primes", Module: apps.Primes, Args: []string{"0", "100000000"}, Package: "./apps/primes"},
	{Name: "mandel", Module: apps.Mandel, Package: "./apps/mandel"},
	{Name: "mandelr", Module: apps.MandelR, Reactor: true, Package: "./apps/mandelr"},
	// mandelc is C: it is compared with the Go mandel, which computes the
	// same image with the same arithmetic.
	{Name: "mandelc", Module: apps.MandelC, Reactor: true, Package: "./apps/mandel"},
}

// Apps runs each app under wazero (its compiler engine) in this process,
// and natively: built with the go command from the repository at root
// ("" skips the native runs).
func Apps(ctx context.Context, list []SampleApp, root string) ([]AppRow, error) {
	tmp, err := os.MkdirTemp("", "momonga-bench-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(tmp)
	var rows []AppRow
	for _, a := range list {
		row := AppRow{App: a.Name, Args: a.Args, Native: "go build " + a.Package}
		dir := filepath.Join(tmp, a.Name)
		if err := os.Mkdir(dir, 0o700); err != nil {
			return nil, err
		}
		if row.WazeroCPU, row.WazeroWall, err = runWazero(ctx, a, dir); err != nil {
			return nil, fmt.Errorf("%s under wazero: %w", a.Name, err)
		}
		if root == "" {
			row.Note = "no native run: no repository given"
		} else if row.NativeCPU, row.NativeWall, err = runNative(ctx, a, root, dir); err != nil {
			row.Note = "no native run: " + err.Error()
		} else {
			row.Ratio = row.WazeroCPU.Seconds() / row.NativeCPU.Seconds()
		}
		rows = append(rows, row)
	}
	return rows, nil
}

func runWazero(ctx context.Context, a SampleApp, dir string) (cpu, wall time.Duration, err error) {
	rt := wazero.NewRuntime(ctx)
	defer rt.Close(ctx)
	wasi_snapshot_preview1.MustInstantiate(ctx, rt)
	compiled, err := rt.CompileModule(ctx, a.Module)
	if err != nil {
		return 0, 0, err
	}
	cfg := wazero.NewModuleConfig().WithArgs(append([]string{a.Name}, a.Args...)...).WithStdout(io.Discard).
		WithFSConfig(wazero.NewFSConfig().WithDirMount(dir, "/"))
	if a.Reactor {
		cfg = cfg.WithStartFunctions()
	}
	cpu0, start := selfCPU(), time.Now()
	mod, err := rt.InstantiateModule(ctx, compiled, cfg)
	if err != nil {
		return 0, 0, err
	}
	defer mod.Close(ctx)
	if a.Reactor {
		if init := mod.ExportedFunction("_initialize"); init != nil {
			if _, err := init.Call(ctx); err != nil {
				return 0, 0, err
			}
		}
		step := mod.ExportedFunction("step")
		for {
			res, err := step.Call(ctx)
			if err != nil {
				return 0, 0, err
			}
			if res[0] != 0 {
				break
			}
		}
	}
	return selfCPU() - cpu0, time.Since(start), nil
}

func runNative(ctx context.Context, a SampleApp, root, dir string) (cpu, wall time.Duration, err error) {
	exe := filepath.Join(dir, "native")
	build := exec.CommandContext(ctx, "go", "build", "-o", exe, a.Package)
	build.Dir = root
	if out, err := build.CombinedOutput(); err != nil {
		return 0, 0, fmt.Errorf("go build %s: %v: %s", a.Package, err, out)
	}
	cmd := exec.CommandContext(ctx, exe, a.Args...)
	cmd.Dir = dir
	start := time.Now()
	if err := cmd.Run(); err != nil {
		return 0, 0, err
	}
	st := cmd.ProcessState
	return st.UserTime() + st.SystemTime(), time.Since(start), nil
}
