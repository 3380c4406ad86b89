package cliutil

import (
	"context"
	"errors"
	"os"
	"runtime"
	"runtime/pprof"

	"github.com/urfave/cli/v2"
)

// CPUProfile starts a CPU profile written to path ("" for none) and
// returns the function that ends it.
func CPUProfile(path string) (stop func(), err error) {
	if path == "" {
		return func() {}, nil
	}
	f, err := os.Create(path)
	if err != nil {
		return nil, err
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return nil, err
	}
	return func() { pprof.StopCPUProfile(); f.Close() }, nil
}

// MemProfile writes to path ("" for none) the allocations made since the
// process started, by where they were made (go tool pprof -sample_index
// alloc_space), with the heap live after a collection.
func MemProfile(path string) error {
	if path == "" {
		return nil
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	runtime.GC()
	return errors.Join(pprof.Lookup("allocs").WriteTo(f, 0), f.Close())
}

// BenchContext is what a bench runs under: a context cancelled on SIGINT or
// SIGTERM and, when --cpuprofile names a file, a CPU profile of the run
// written there. stop ends both.
func BenchContext(c *cli.Context) (ctx context.Context, stop func(), err error) {
	ctx, cancel := SignalContext(context.Background())
	stopProfile, err := CPUProfile(c.String("cpuprofile"))
	if err != nil {
		cancel()
		return nil, nil, err
	}
	return ctx, func() { stopProfile(); cancel() }, nil
}
