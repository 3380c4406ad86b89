// Command ckptrun is the runner as a small command, for the cross-architecture
// test: built for arm64 or s390x and run under qemu-user, it resumes a
// reactor module from a checkpoint made on another CPU, or makes one there.
//
//	ckptrun -module M -app HASH -task T -dir TASKDIR -out OUTPUT -ckpt CKPTDIR [-resume A,B] [-steps N] [-engine E]
//
// It checkpoints after every step; with -steps it stops after the checkpoint
// N steps in and prints that checkpoint's chain (comma-separated), else it
// runs to the end. It prints what went wrong on stderr and exits 1.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"strings"

	"github.com/momonga-project/momonga/client/runner"
	"github.com/momonga-project/momonga/workunits"
)

func main() {
	module := flag.String("module", "", "the module")
	app := flag.String("app", "", "its sha-256")
	task := flag.String("task", "t", "task id")
	dir := flag.String("dir", "", "task directory")
	out := flag.String("out", "", "output file")
	ckpt := flag.String("ckpt", "", "checkpoint directory")
	resume := flag.String("resume", "", "checkpoint chain to resume from, comma-separated")
	steps := flag.Uint64("steps", 0, "stop after the checkpoint this many steps in (0: run to the end)")
	engine := flag.String("engine", "", "the engine to run on (default: the fastest built in)")
	flag.Parse()
	spec := runner.Spec{Module: *module, Name: "app", Args: flag.Args(), Dir: *dir, Output: *out, Engine: *engine,
		Checkpoint: &runner.CheckpointSpec{App: workunits.Hash(*app), Task: *task, Dir: *ckpt, Interval: 1e-9}}
	if *resume != "" {
		spec.Checkpoint.Resume = strings.Split(*resume, ",")
	}
	stop := make(chan struct{})
	stopped := false
	var newest runner.Written
	res := runner.RunControlled(context.Background(), spec, runner.Control{Stop: stop, Written: func(w runner.Written) {
		newest = w
		if *steps > 0 && w.Steps >= *steps && !stopped {
			stopped = true
			close(stop)
		}
	}})
	if *engine != "" && res.Engine != *engine {
		fmt.Fprintf(os.Stderr, "ckptrun: ran on %s, not %s\n", res.Engine, *engine)
		os.Exit(1)
	}
	if res.Resumed != nil && res.Resumed.Error != "" {
		fmt.Fprintln(os.Stderr, "ckptrun: checkpoint refused:", res.Resumed.Error)
		os.Exit(1)
	}
	if res.Stopped {
		chain := newest.Path
		if newest.Base != "" {
			chain = newest.BasePath + "," + newest.Path
		}
		fmt.Println(chain)
		return
	}
	if res.Failed {
		fmt.Fprintln(os.Stderr, "ckptrun:", res.Reason, res.Stderr)
		os.Exit(1)
	}
}
