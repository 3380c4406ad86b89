// Command momonga is the volunteer client: it gives a machine's idle time to
// momonga projects. `momonga run` is the daemon; the other commands talk to
// it through its local control API (client/control).
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"text/tabwriter"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/momonga-project/momonga/client/control"
	"github.com/momonga-project/momonga/client/daemon"
	"github.com/momonga-project/momonga/client/eventlog"
	"github.com/momonga-project/momonga/client/host"
	"github.com/momonga-project/momonga/client/prefs"
	"github.com/momonga-project/momonga/cmd/internal/cliutil"
)

func main() {
	a := app()
	if err := a.Run(cliutil.Interspersed(a, os.Args)); err != nil {
		fmt.Fprintln(os.Stderr, "momonga:", err)
		os.Exit(1)
	}
}

var (
	dataDefaults = defaultDataDirs(thisPlatform())
	// dataFlag names the client a command talks to.
	dataFlag = &cli.StringFlag{Name: "data", Usage: "data directory of the client to talk to", Value: dataDefaults.Use, EnvVars: []string{"MOMONGA_DATA"}}
	// runDataFlag is where `momonga run` keeps everything.
	runDataFlag = &cli.StringFlag{Name: "data", Usage: "data directory (host identity, state, preferences, cache)", Value: dataDefaults.Run, EnvVars: []string{"MOMONGA_DATA"}}
	jsonFlag    = &cli.BoolFlag{Name: "json", Usage: "print JSON"}
)

func app() *cli.App {
	return &cli.App{
		Name:    "momonga",
		Usage:   "compute for science projects while this machine is idle",
		Version: cliutil.Version,
		Flags:   cliutil.LogFlags,
		Commands: []*cli.Command{
			attachCommand(),
			teamCommand(),
			accountCommand(),
			{
				Name:  "run",
				Usage: "run the client: register with the attached projects, fetch work, compute, report; with none attached, wait for `momonga attach`",
				Flags: []cli.Flag{
					runDataFlag,
					&cli.StringFlag{Name: "project", Usage: "attach this project (NATS URL, e.g. nats://127.0.0.1:4222) if it is not yet"},
					&cli.StringFlag{Name: "ca", Usage: "PEM file of the authority of --project's TLS certificate (default: the one given at attach)"},
					&cli.IntFlag{Name: "cpus", Usage: "tasks to run at once (0 = max_cpus_percent of the cores)"},
					&cli.StringFlag{Name: "name", Usage: "host name to show the projects (default: this machine's)"},
					&cli.StringFlag{Name: "control", Usage: `control API address, loopback only ("off" for none)`, Value: "127.0.0.1:0"},
					&cli.DurationFlag{Name: "checkpoint", Usage: "how often running tasks are checkpointed, unless their project asks otherwise (default: the preference checkpoint_seconds)"},
					&cli.StringFlag{Name: "log-level", Usage: "what the event log (`momonga log`) keeps: debug, info, warn or error", Value: "info"},
				},
				Action: func(c *cli.Context) error {
					// Setting GOMAXPROCS stops the runtime from re-reading
					// the CPU limits every second, which would wake an idle
					// client for nothing.
					runtime.GOMAXPROCS(runtime.GOMAXPROCS(0))
					level, err := eventlog.ParseLevel(c.String("log-level"))
					if err != nil {
						return err
					}
					ctx, stop := serviceContext(context.Background())
					defer stop()
					d, err := daemon.New(daemon.Config{
						LogLevel:   level,
						DataDir:    c.String("data"),
						Project:    c.String("project"),
						CAFile:     c.String("ca"),
						CPUs:       c.Int("cpus"),
						Name:       c.String("name"),
						Control:    c.String("control"),
						Logger:     cliutil.Logger(c),
						TrimMemory: true,

						CheckpointInterval: c.Duration("checkpoint"),
					})
					if err != nil {
						return err
					}
					if len(d.Projects()) == 0 {
						fmt.Fprintf(c.App.ErrWriter, "momonga: no project attached yet: waiting for `momonga attach URL --data %s`\n", c.String("data"))
					}
					return d.Run(ctx)
				},
			},
			query("status", "what the client is doing", func(ctx context.Context, c *control.Client) (any, error) { return c.Status(ctx) }, printStatus),
			query("tasks", "the tasks the client holds", func(ctx context.Context, c *control.Client) (any, error) { return c.Tasks(ctx) }, printTasks),
			query("projects", "the attached projects and their shares", func(ctx context.Context, c *control.Client) (any, error) { return c.Projects(ctx) }, printProjects),
			query("host", "this machine as the client measured it", func(ctx context.Context, c *control.Client) (any, error) { return c.Host(ctx) }, printHost),
			query("suspend", "stop computing until `momonga resume`", func(ctx context.Context, c *control.Client) (any, error) { return c.Suspend(ctx) }, printStatus),
			query("resume", "compute again as the preferences allow", func(ctx context.Context, c *control.Client) (any, error) { return c.Resume(ctx) }, printStatus),
			{
				Name:  "benchmark",
				Usage: "run the benchmarks (through the client when it runs, so projects learn the new figures)",
				Flags: []cli.Flag{dataFlag, jsonFlag},
				Action: func(c *cli.Context) error {
					var b host.Benchmarks
					cl, err := control.Dial(c.String("data"))
					if errors.Is(err, control.ErrNotRunning) {
						// The client's compilation cache, when there is one,
						// spares compiling the reference module again.
						cfg, dir := host.BenchConfig{}, c.String("data")
						if _, err := os.Stat(filepath.Join(dir, "cache")); err == nil {
							cfg.CacheDir = filepath.Join(dir, "cache")
						}
						b, err = host.RunBenchmarks(c.Context, cfg, host.Measure(os.TempDir()))
					} else if err == nil {
						b, err = cl.Benchmark(c.Context)
					}
					if err != nil {
						return err
					}
					return output(c, b, func(w io.Writer, v any) { printBenchmarks(w, v.(host.Benchmarks)) })
				},
			},
			{
				Name:      "detach",
				Usage:     "detach a project (its tasks here are dropped)",
				ArgsUsage: "URL",
				Flags:     []cli.Flag{dataFlag, jsonFlag},
				Action: func(c *cli.Context) error {
					return withClient(c, func(ctx context.Context, cl *control.Client) error {
						u, err := oneArg(c, "URL")
						if err != nil {
							return err
						}
						if err := cl.Detach(ctx, u); err != nil {
							return err
						}
						return output(c, map[string]any{"detached": u}, func(w io.Writer, _ any) { fmt.Fprintf(w, "detached %s\n", u) })
					})
				},
			},
			prefsCommand(),
			serviceCommand(),
			uiCommand(),
			logCommand(),
			screensaverCommand(),
			{
				Name:  "bench",
				Usage: "measure the client",
				Subcommands: []*cli.Command{
					impactCommand(),
				},
			},
			cliutil.WorkerCommand,
		},
	}
}

// query is a command that asks the running client for something and prints
// it.
func query(name, usage string, ask func(context.Context, *control.Client) (any, error), print func(io.Writer, any)) *cli.Command {
	return &cli.Command{
		Name:  name,
		Usage: usage,
		Flags: []cli.Flag{dataFlag, jsonFlag},
		Action: func(c *cli.Context) error {
			return withClient(c, func(ctx context.Context, cl *control.Client) error {
				v, err := ask(ctx, cl)
				if err != nil {
					return err
				}
				return output(c, v, print)
			})
		},
	}
}

func withClient(c *cli.Context, f func(context.Context, *control.Client) error) error {
	cl, err := control.Dial(c.String("data"))
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(c.Context, time.Minute)
	defer cancel()
	return f(ctx, cl)
}

func oneArg(c *cli.Context, what string) (string, error) {
	if c.NArg() != 1 {
		return "", fmt.Errorf("give one %s", what)
	}
	return c.Args().First(), nil
}

func output(c *cli.Context, v any, print func(io.Writer, any)) error {
	return cliutil.Output(c, v, func(w io.Writer, v any) error { print(w, v); return nil })
}

func printStatus(w io.Writer, v any) {
	s := v.(control.Status)
	state := "computing"
	switch {
	case s.Projects == 0:
		state = "waiting for a project: attach one with `momonga attach URL --account-key KEY`"
	case s.Benchmarking:
		state = "running the benchmarks"
	case !s.Computing:
		state = "not computing: " + s.Reason
	}
	fmt.Fprintf(w, "host %s: %s\n", s.Host, state)
	fmt.Fprintf(w, "tasks: %d running, %d suspended, %d queued, on %d slots; %d projects\n", s.Running, s.Suspended, s.Queued, s.Slots, s.Projects)
	idleFor := "unknown"
	if !s.Observation.LastInput.IsZero() {
		idleFor = s.Observation.Now.Sub(s.Observation.LastInput).Round(time.Second).String()
	}
	fmt.Fprintf(w, "last input %s ago; other programs' CPU %.0f%%; on battery %v\n", idleFor, 100*s.Observation.OtherCPU, s.Observation.OnBattery)
}

func printTasks(w io.Writer, v any) {
	ts := v.([]control.Task)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "PROJECT\tTASK\tAPP\tSTATE\tRAN\tESTIMATE\tDEADLINE")
	for _, t := range ts {
		state := t.State
		if t.Reason != "" && t.State == "suspended" {
			state += " (" + t.Reason + ")"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", t.Project, t.ID, t.App, state,
			secs(t.CPUSeconds), secs(t.EstimatedSeconds), t.Deadline.Local().Format("2006-01-02 15:04"))
	}
	tw.Flush()
}

func secs(s float64) string { return (time.Duration(s) * time.Second).String() }

func printProjects(w io.Writer, v any) {
	ps := v.([]control.Project)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "URL\tNAME\tSHARE\tUSE (1 DAY)\tTASKS\tCONNECTED\tERROR")
	for _, p := range ps {
		fmt.Fprintf(tw, "%s\t%s\t%g\t%.0f%%\t%d\t%v\t%s\n", p.URL, p.Name, p.Share, 100*p.ShareOfUse, p.Tasks, p.Connected, p.LastError)
	}
	tw.Flush()
}

func printHost(w io.Writer, v any) {
	h := v.(control.HostReport)
	in := h.Info
	fmt.Fprintf(w, "%s/%s, %s\n", in.OS, in.Arch, in.OSVersion)
	fmt.Fprintf(w, "cpu: %s, %d cores\n", in.CPUModel, in.Cores)
	fmt.Fprintf(w, "memory: %s, %s available\n", gb(in.MemoryBytes), gb(in.MemoryAvailableBytes))
	fmt.Fprintf(w, "disk (data directory): %s, %s free\n", gb(in.DiskTotalBytes), gb(in.DiskFreeBytes))
	power := "mains"
	if in.Power.OnBattery {
		power = fmt.Sprintf("battery (%.0f%%)", in.Power.BatteryPercent)
	} else if in.Power.HasBattery {
		power = fmt.Sprintf("mains, battery at %.0f%%", in.Power.BatteryPercent)
	}
	fmt.Fprintf(w, "power: %s\n", power)
	printBenchmarks(w, h.Benchmarks)
}

func printBenchmarks(w io.Writer, b host.Benchmarks) {
	if b.At.IsZero() {
		fmt.Fprintln(w, "benchmarks: not run yet")
		return
	}
	fmt.Fprintf(w, "benchmarks (one core, %s, took %.1f s):\n", b.At.Local().Format("2006-01-02 15:04"), b.Seconds)
	fmt.Fprintf(w, "  floating point (Whetstone-like): %.0f MFLOPS\n", b.FLOPS/1e6)
	fmt.Fprintf(w, "  integer (Dhrystone-like):        %.0f MIPS\n", b.IOPS/1e6)
	fmt.Fprintf(w, "  memory copy:                     %.1f GB/s\n", b.MemBytesPerSec/1e9)
	engine := b.Engine
	if engine == "" {
		engine = "wazero" // measured before the engine was recorded
	}
	fmt.Fprintf(w, "  wasm on %-24s %.0f M integers sieved/s (primes app)\n", engine+":", b.WasmOPS/1e6)
}

func gb(b int64) string { return fmt.Sprintf("%.1f GB", float64(b)/1e9) }

func prefsCommand() *cli.Command {
	return &cli.Command{
		Name:  "prefs",
		Usage: "show or set the computing preferences",
		Subcommands: []*cli.Command{
			{
				Name:  "show",
				Usage: "show the preferences",
				Flags: []cli.Flag{dataFlag, jsonFlag},
				Action: func(c *cli.Context) error {
					p, err := loadPrefs(c)
					if err != nil {
						return err
					}
					return output(c, p, func(w io.Writer, v any) { printPrefs(w, v.(prefs.Prefs)) })
				},
			},
			{
				Name:      "set",
				Usage:     "set one preference",
				ArgsUsage: "KEY VALUE",
				Flags:     []cli.Flag{dataFlag, jsonFlag},
				Action: func(c *cli.Context) error {
					if c.NArg() != 2 {
						return errors.New("give a KEY and a VALUE (`momonga prefs show` lists the keys)")
					}
					key, value := c.Args().Get(0), c.Args().Get(1)
					p, err := setPref(c, key, value)
					if err != nil {
						return err
					}
					return output(c, p, func(w io.Writer, v any) {
						got, _ := v.(prefs.Prefs).Get(key)
						fmt.Fprintf(w, "%s = %s\n", key, got)
					})
				},
			},
		},
	}
}

// loadPrefs asks the running client, or reads the file when it is not
// running.
func loadPrefs(c *cli.Context) (prefs.Prefs, error) {
	cl, err := control.Dial(c.String("data"))
	if errors.Is(err, control.ErrNotRunning) {
		return prefs.Load(c.String("data"))
	}
	if err != nil {
		return prefs.Prefs{}, err
	}
	return cl.Prefs(c.Context)
}

func setPref(c *cli.Context, key, value string) (prefs.Prefs, error) {
	dir := c.String("data")
	cl, err := control.Dial(dir)
	if err == nil {
		return cl.SetPref(c.Context, key, value)
	}
	if !errors.Is(err, control.ErrNotRunning) {
		return prefs.Prefs{}, err
	}
	p, err := prefs.Load(dir)
	if err != nil {
		return p, err
	}
	if err := p.Set(key, value); err != nil {
		return p, err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return p, err
	}
	return p, prefs.Save(dir, p)
}

func printPrefs(w io.Writer, p prefs.Prefs) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	for _, k := range prefs.Keys {
		v, _ := p.Get(k.Name)
		if v == "" {
			v = `""`
		}
		fmt.Fprintf(tw, "%s\t%s\t%s (%s)\n", k.Name, v, k.Help, k.Range())
	}
	tw.Flush()
}
