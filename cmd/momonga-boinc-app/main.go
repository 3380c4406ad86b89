// Command momonga-boinc-app is the momonga runner as a BOINC app (DESIGN
// §10): a BOINC client starts it in a task's slot directory with the work
// unit's command line, and it runs the task's WebAssembly module under
// wazero, speaking BOINC's app protocol (client/boincapp). It is built for
// every BOINC platform a project serves (project/boinc.Platforms), pure Go:
//
//	GOOS=linux GOARCH=amd64 CGO_ENABLED=0 go build -o apps/momonga-boinc-app_x86_64-pc-linux-gnu ./cmd/momonga-boinc-app
//
// `momonga-boinc-app worker` is the worker process it runs each task in.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/momonga-project/momonga/client/boincapp"
	"github.com/momonga-project/momonga/client/runner"
)

func main() {
	if len(os.Args) > 1 && os.Args[1] == "worker" {
		os.Exit(runner.WorkerMain(os.Stdin, os.Stdout))
	}
	exe, err := os.Executable()
	if err != nil {
		fmt.Fprintf(os.Stderr, "momonga: %v\n", err)
		os.Exit(1)
	}
	dir, err := os.Getwd()
	if err != nil {
		fmt.Fprintf(os.Stderr, "momonga: %v\n", err)
		os.Exit(1)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	_, err = os.Stat(boincapp.InitDataFile)
	app := boincapp.App{
		Dir:        dir,
		Args:       os.Args[1:],
		Worker:     runner.Worker{Command: []string{exe, "worker"}},
		Standalone: os.IsNotExist(err),
	}
	os.Exit(app.Run(ctx))
}
