package main

import (
	"encoding/json"
	"os"
	"sync"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/momonga-project/momonga/client/daemon"
	"github.com/momonga-project/momonga/client/idle"
	"github.com/momonga-project/momonga/cmd/internal/cliutil"
	"github.com/momonga-project/momonga/cmd/internal/demo"
)

// demoVolunteerCommand runs one volunteer of `demo --scenario migrate` in
// its own process, so that the demo can kill it as a host dies, and prints
// what it does as JSON lines for the demo to show.
func demoVolunteerCommand() *cli.Command {
	return &cli.Command{
		Name:   demo.VolunteerCommandName,
		Hidden: true,
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "data", Required: true},
			&cli.StringFlag{Name: "project", Required: true},
			&cli.StringFlag{Name: "name"},
			&cli.DurationFlag{Name: "checkpoint", Value: daemon.DefaultCheckpointInterval},
		},
		Action: func(c *cli.Context) error {
			ctx, stop := cliutil.SignalContext(c.Context)
			defer stop()
			var mu sync.Mutex
			enc := json.NewEncoder(os.Stdout)
			dedicated := demo.VolunteerPrefs()
			return daemon.Run(ctx, daemon.Config{
				Prefs:              &dedicated,
				Monitor:            idle.Unwatched(),
				Benchmark:          demo.SharedBenchmark(c.String("data")),
				Control:            "off",
				DataDir:            c.String("data"),
				Project:            c.String("project"),
				CPUs:               1,
				Name:               c.String("name"),
				CheckpointInterval: c.Duration("checkpoint"),
				StopGrace:          10 * time.Second,
				Logger:             cliutil.Logger(c),
				Events: func(e daemon.Event) {
					mu.Lock()
					defer mu.Unlock()
					_ = enc.Encode(e)
				},
			})
		},
	}
}
