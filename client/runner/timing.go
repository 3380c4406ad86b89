package runner

import (
	"context"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/momonga-project/momonga/workunits"
)

// TimeCommand runs a command module once for each argument list on the
// named engine ("" for the default), compiled once, in an empty directory
// of its own with its output discarded, and returns the time the runs took,
// compilation excluded: how the host benchmark measures wasm speed on the
// engine the host's tasks run on. A run that does not exit 0 is an error.
func TimeCommand(ctx context.Context, engineName string, wasm []byte, cacheDir string, argLists [][]string) (time.Duration, error) {
	if engineName == "" {
		engineName = DefaultEngine()
	}
	if engines[engineName] == nil {
		return 0, fmt.Errorf("no engine %q in this binary", engineName)
	}
	dir, err := os.MkdirTemp("", "momonga-time-")
	if err != nil {
		return 0, err
	}
	defer os.RemoveAll(dir)
	eng := engines[engineName]()
	defer eng.close(ctx)
	comp, err := eng.compile(ctx, wasm, cacheDir)
	if err != nil {
		return 0, err
	}
	defer comp.close(ctx)
	start := time.Now()
	for _, args := range argLists {
		stderr := newStderrCapture()
		inst, err := comp.instantiate(ctx, &guest{
			args: args, stdout: io.Discard, stderr: stderr, fs: newTaskFS(dir, nil),
			host: newVirtualHost(""), memoryLimit: workunits.DefaultMemoryBytes,
		})
		if err != nil {
			return 0, err
		}
		_, err = inst.call(ctx, "_start")
		inst.close(ctx)
		if res, _ := outcome(err, true, stderr.String()); res.Failed {
			return 0, fmt.Errorf("%s: %s", args, res.Reason)
		}
	}
	return time.Since(start), nil
}
