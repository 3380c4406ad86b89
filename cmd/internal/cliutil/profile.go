package cliutil

import (
	"errors"
	"os"
	"runtime"
	"runtime/pprof"
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
