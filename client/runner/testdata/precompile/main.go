// Command precompile compiles wasm modules into a wazero compilation cache:
//
//	precompile CACHEDIR MODULE...
//
// The runner's tests build it without the race detector and run it once, so
// that the Go fixtures are compiled before any test needs them: under -race,
// wazero's compiler is instrumented too and takes about ten times as long,
// while what it writes to the cache does not depend on how the program that
// wrote it was built.
package main

import (
	"context"
	"fmt"
	"os"
	"sync"

	"github.com/tetratelabs/wazero"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: precompile CACHEDIR MODULE...")
		os.Exit(2)
	}
	modules := os.Args[2:]
	errs := make([]error, len(modules))
	var wg sync.WaitGroup
	for i, path := range modules {
		wg.Go(func() { errs[i] = compile(os.Args[1], path) })
	}
	wg.Wait()
	failed := false
	for i, err := range errs {
		if err != nil {
			fmt.Fprintf(os.Stderr, "%s: %v\n", modules[i], err)
			failed = true
		}
	}
	if failed {
		os.Exit(1)
	}
}

func compile(cacheDir, path string) error {
	wasm, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	ctx := context.Background()
	cache, err := wazero.NewCompilationCacheWithDir(cacheDir)
	if err != nil {
		return err
	}
	defer cache.Close(ctx)
	rt := wazero.NewRuntimeWithConfig(ctx, wazero.NewRuntimeConfig().WithCompilationCache(cache))
	defer rt.Close(ctx)
	_, err = rt.CompileModule(ctx, wasm)
	return err
}
