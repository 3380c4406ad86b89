// Command momonga is the volunteer client: it gives a machine's idle time to
// momonga projects.
package main

import (
	"context"
	"fmt"
	"os"

	"github.com/urfave/cli/v2"

	"github.com/momonga-project/momonga/client/daemon"
	"github.com/momonga-project/momonga/cmd/internal/cliutil"
)

func main() {
	a := app()
	if err := a.Run(cliutil.Interspersed(a, os.Args)); err != nil {
		fmt.Fprintln(os.Stderr, "momonga:", err)
		os.Exit(1)
	}
}

func app() *cli.App {
	return &cli.App{
		Name:    "momonga",
		Usage:   "compute for science projects while this machine is idle",
		Version: cliutil.Version,
		Flags:   cliutil.LogFlags,
		Commands: []*cli.Command{
			attachCommand(),
			{
				Name:  "run",
				Usage: "run the client: register with a project, fetch work, compute, report",
				Flags: []cli.Flag{
					&cli.StringFlag{Name: "data", Usage: "data directory (host identity, cache, slots)", Value: defaultDataDir()},
					&cli.StringFlag{Name: "project", Usage: "project NATS URL, e.g. nats://127.0.0.1:4222 (default: the one attached to)"},
					&cli.StringFlag{Name: "ca", Usage: "PEM file of the authority of the project's TLS certificate (default: the one given at attach)"},
					&cli.IntFlag{Name: "cpus", Usage: "tasks to run at once (0 = one per core)"},
					&cli.StringFlag{Name: "name", Usage: "host name to show the project (default: this machine's)"},
				},
				Action: func(c *cli.Context) error {
					ctx, stop := cliutil.SignalContext(context.Background())
					defer stop()
					return daemon.Run(ctx, daemon.Config{
						DataDir: c.String("data"),
						Project: c.String("project"),
						CAFile:  c.String("ca"),
						CPUs:    c.Int("cpus"),
						Name:    c.String("name"),
						Logger:  cliutil.Logger(c),
					})
				},
			},
			cliutil.WorkerCommand,
		},
	}
}

func defaultDataDir() string {
	if dir, err := os.UserConfigDir(); err == nil {
		return dir + string(os.PathSeparator) + "momonga"
	}
	return "momonga-data"
}
