package main

import (
	"fmt"
	"io"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/momonga-project/momonga/cmd/internal/cliutil"
)

// impactResult is what `momonga bench impact` measured, with BOINC's figures
// as the goals.
type impactResult struct {
	IdleRSSBytes     int64   `json:"idle_rss_bytes"`
	IdleCPUPercent   float64 `json:"idle_cpu_percent"` // of one core
	IdleSeconds      float64 `json:"idle_seconds"`
	SuspendSeconds   float64 `json:"suspend_seconds"` // simulated input to every task stopped
	Input            string  `json:"input"`           // how input was simulated: x11 or tty
	Tasks            int     `json:"tasks"`
	GoalRSSBytes     int64   `json:"goal_rss_bytes"`
	GoalCPUPercent   float64 `json:"goal_cpu_percent"`
	GoalSuspendSecs  float64 `json:"goal_suspend_seconds"`
	DaemonStartupSec float64 `json:"daemon_startup_seconds"` // start to registered, benchmarks included
}

const (
	goalRSS     = 16 << 20
	goalCPU     = 0.05
	goalSuspend = 1.0
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
			res, err := runImpact(ctx, impactConfig{Idle: c.Duration("idle"), Input: c.String("input"), Tasks: c.Int("tasks"), ProjectBinary: c.String("project-binary")})
			if err != nil {
				return err
			}
			return output(c, res, func(w io.Writer, v any) { printImpact(w, v.(impactResult)) })
		},
	}
}

type impactConfig struct {
	Idle          time.Duration
	Input         string
	Tasks         int
	ProjectBinary string
}

func printImpact(w io.Writer, r impactResult) {
	mark := func(ok bool) string {
		if ok {
			return "ok"
		}
		return "OVER"
	}
	fmt.Fprintf(w, "idle resident memory:   %.1f MB  (goal ≤ %.0f MB: %s)\n", float64(r.IdleRSSBytes)/(1<<20), float64(r.GoalRSSBytes)/(1<<20), mark(r.IdleRSSBytes <= r.GoalRSSBytes))
	fmt.Fprintf(w, "idle CPU over %.0f s:     %.3f%% of one core  (goal ≤ %.2f%%: %s)\n", r.IdleSeconds, r.IdleCPUPercent, r.GoalCPUPercent, mark(r.IdleCPUPercent <= r.GoalCPUPercent))
	fmt.Fprintf(w, "input to %d tasks stopped: %.0f ms via %s  (goal ≤ %.0f s: %s)\n", r.Tasks, 1000*r.SuspendSeconds, r.Input, r.GoalSuspendSecs, mark(r.SuspendSeconds <= r.GoalSuspendSecs))
}
