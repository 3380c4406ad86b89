package runner

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"time"
)

// WorkerExecutable is the name of the worker executable with the faster
// engine (cmd/momonga-worker), shipped beside the client.
const WorkerExecutable = "momonga-worker"

// FindWorker picks how a client whose own executable is exe starts its
// workers: the worker executable beside it when there is one and it runs
// here (it answers `engines`), else exe itself with its worker subcommand,
// on wazero. It returns the engines the chosen worker has, the default
// first.
func FindWorker(ctx context.Context, exe string) (Worker, []string) {
	name := WorkerExecutable
	if runtime.GOOS == "windows" {
		name += ".exe"
	}
	path := filepath.Join(filepath.Dir(exe), name)
	if _, err := os.Stat(path); err == nil {
		ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		if out, err := exec.CommandContext(ctx, path, "engines").Output(); err == nil {
			if engines := strings.Fields(string(out)); len(engines) > 0 {
				return Worker{Command: []string{path, "worker"}}, engines
			}
		}
	}
	return Worker{Command: []string{exe, "worker"}}, []string{EngineWazero}
}
