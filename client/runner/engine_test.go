package runner

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"testing"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/imports/wasi_snapshot_preview1"

	"github.com/momonga-project/momonga/client/runner/wasi"
)

// TestWASIFunctionsMatchWazero checks that the WASI written above the
// engines offers exactly the functions wazero's own does, with the same
// signatures, so that a module links on every engine or on none.
func TestWASIFunctionsMatchWazero(t *testing.T) {
	ctx := context.Background()
	rt := wazero.NewRuntime(ctx)
	defer rt.Close(ctx)
	if _, err := wasi_snapshot_preview1.Instantiate(ctx, rt); err != nil {
		t.Fatal(err)
	}
	defs := rt.Module(wasi_snapshot_preview1.ModuleName).ExportedFunctionDefinitions()
	var theirs []string
	for name := range defs {
		theirs = append(theirs, name)
	}
	sort.Strings(theirs)
	var ours []string
	for _, f := range wasi.Functions() {
		ours = append(ours, f.Name)
		d := defs[f.Name]
		if d == nil {
			continue
		}
		if !slices.Equal(d.ParamTypes(), f.Params) || len(d.ResultTypes()) != map[bool]int{true: 0, false: 1}[f.NoResult] {
			t.Errorf("%s: params %v results %v here, wazero %v %v", f.Name, f.Params, !f.NoResult, d.ParamTypes(), d.ResultTypes())
		}
	}
	if !slices.Equal(ours, theirs) {
		t.Errorf("WASI functions here:\n%v\nwazero's:\n%v", ours, theirs)
	}
}

// TestFindWorker checks the choice of worker: the worker executable beside
// the client when it answers, the client itself otherwise.
func TestFindWorker(t *testing.T) {
	dir := t.TempDir()
	exe := filepath.Join(dir, "momonga")
	w, engines := FindWorker(context.Background(), exe)
	if !slices.Equal(w.Command, []string{exe, "worker"}) || !slices.Equal(engines, []string{EngineWazero}) {
		t.Errorf("with no worker executable: %v %v", w.Command, engines)
	}
	worker := filepath.Join(dir, WorkerExecutable)
	if err := os.WriteFile(worker, []byte("#!/bin/sh\nexit 1\n"), 0o700); err != nil {
		t.Fatal(err)
	}
	if w, _ := FindWorker(context.Background(), exe); w.Command[0] != exe {
		t.Errorf("a worker executable that fails is used: %v", w.Command)
	}
	if err := os.WriteFile(worker, []byte("#!/bin/sh\n[ \"$1\" = engines ] && echo wasmtime wazero\n"), 0o700); err != nil {
		t.Fatal(err)
	}
	w, engines = FindWorker(context.Background(), exe)
	if !slices.Equal(w.Command, []string{worker, "worker"}) || !slices.Equal(engines, []string{"wasmtime", "wazero"}) {
		t.Errorf("with a worker executable: %v %v", w.Command, engines)
	}
}
