package main

import (
	"io"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/momonga-project/momonga/client/impact"
	"github.com/momonga-project/momonga/cmd/internal/cliutil"
)

func impactCommand() *cli.Command {
	return &cli.Command{
		Name:  "impact",
		Usage: "start the client against a local project and measure its idle memory and CPU, and how fast it stops tasks on input",
		Flags: []cli.Flag{
			jsonFlag,
			&cli.DurationFlag{Name: "idle", Usage: "how long to measure the idle client", Value: 60 * time.Second},
			&cli.StringFlag{Name: "input", Usage: "how to simulate the person: x11 (Xvfb and xdotool), tty (a pseudo-terminal) or auto", Value: "auto"},
			&cli.IntFlag{Name: "tasks", Usage: "tasks running when the input comes", Value: 2},
			&cli.StringFlag{Name: "project-binary", Usage: "momonga-project to run the local project with (default: beside momonga, or on PATH)"},
		},
		Action: func(c *cli.Context) error {
			ctx, stop := cliutil.SignalContext(c.Context)
			defer stop()
			res, err := impact.Run(ctx, impact.Config{Idle: c.Duration("idle"), Input: c.String("input"), Tasks: c.Int("tasks"), ProjectBinary: c.String("project-binary")})
			if err != nil {
				return err
			}
			return output(c, res, func(w io.Writer, v any) { impact.Print(w, v.(impact.Result)) })
		},
	}
}
