package cliutil

import (
	"context"
	"os"
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
