// Package impact measures what the volunteer client costs the machine it
// runs on (`momonga bench impact`): its resident memory and CPU while idle,
// attached to a project with nothing to do, and how soon it stops its tasks
// when the person comes back. It runs the real binaries, each in a process
// of its own: a local project (`momonga-project serve` on loopback, set up
// with that binary's own tools) and the client (`momonga run`, from a copy
// of the running executable). BOINC's client gives the goals.
package impact

import (
	"fmt"
	"io"
	"time"
)

// Config is what to measure.
type Config struct {
	Idle          time.Duration // how long to measure the idle client
	Input         string        // how to simulate the person: x11, tty or auto
	Tasks         int           // tasks running when the input comes
	ProjectBinary string        // momonga-project; "" = beside this executable, or on PATH
}

// Result is what was measured, with BOINC's figures as the goals.
type Result struct {
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
	// The client with nothing attached, as a package starts it: idle, then
	// from `momonga attach` to a task running.
	UnattachedRSSBytes   int64   `json:"unattached_rss_bytes"`
	UnattachedCPUPercent float64 `json:"unattached_cpu_percent"`
	UnattachedSeconds    float64 `json:"unattached_seconds"`
	AttachToRunSeconds   float64 `json:"attach_to_run_seconds"`
}

const (
	goalRSS     = 16 << 20
	goalCPU     = 0.05
	goalSuspend = 1.0
)

// Print writes r as `momonga bench impact` shows it.
func Print(w io.Writer, r Result) {
	mark := func(ok bool) string {
		if ok {
			return "ok"
		}
		return "OVER"
	}
	fmt.Fprintf(w, "idle resident memory:   %.1f MB  (goal ≤ %.0f MB: %s)\n", float64(r.IdleRSSBytes)/(1<<20), float64(r.GoalRSSBytes)/(1<<20), mark(r.IdleRSSBytes <= r.GoalRSSBytes))
	fmt.Fprintf(w, "idle CPU over %.0f s:     %.3f%% of one core  (goal ≤ %.2f%%: %s)\n", r.IdleSeconds, r.IdleCPUPercent, r.GoalCPUPercent, mark(r.IdleCPUPercent <= r.GoalCPUPercent))
	fmt.Fprintf(w, "input to %d tasks stopped: %.0f ms via %s  (goal ≤ %.0f s: %s)\n", r.Tasks, 1000*r.SuspendSeconds, r.Input, r.GoalSuspendSecs, mark(r.SuspendSeconds <= r.GoalSuspendSecs))
	if r.UnattachedSeconds > 0 {
		fmt.Fprintf(w, "nothing attached, idle:  %.1f MB, %.3f%% of one core over %.0f s  (goals as above: %s)\n", float64(r.UnattachedRSSBytes)/(1<<20),
			r.UnattachedCPUPercent, r.UnattachedSeconds, mark(r.UnattachedRSSBytes <= r.GoalRSSBytes && r.UnattachedCPUPercent <= r.GoalCPUPercent))
		fmt.Fprintf(w, "attach to a task running: %.1f s\n", r.AttachToRunSeconds)
	}
}
