package main

import (
	"fmt"
	"io"
	"text/tabwriter"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/momonga-project/momonga/cmd/internal/cliutil"
	"github.com/momonga-project/momonga/project/bench"
	"github.com/momonga-project/momonga/project/gateway"
)

func benchCommand() *cli.Command {
	return &cli.Command{
		Name:        "bench",
		Usage:       "measure the project's speed on this machine",
		Subcommands: []*cli.Command{benchDispatchCommand(), benchCheatCommand(), benchCheckpointCommand(), benchScheduleCommand(), benchShareCommand(), benchEnginesCommand(), benchStatsCommand(), benchHostsCommand()},
	}
}

func benchDispatchCommand() *cli.Command {
	return &cli.Command{
		Name:  "dispatch",
		Usage: "work-unit assignments per second through gateway, log and scheduler, next to raw JetStream publishes",
		Description: "For each level, starts a project server in a temporary directory, queues --tasks tasks, and has\n" +
			"simulated volunteers (each with its own host id and connection) request --slots tasks at a time, as\n" +
			"many at once as the level says. As many publishers store the same records in a plain stream of\n" +
			"the same server, synchronously, in turns with the volunteers; the ratio is assignments/s over\n" +
			"raw publish/s. As many requesters then time a bare request and reply through the same server (echo),\n" +
			"answered at once with a real work reply: the ratio's ceiling for any path that answers through NATS. The gateway groups the requests arriving together into one record of the log,\n" +
			"--batch of them at most (1: one record per request, as before batching).",
		Flags: []cli.Flag{
			&cli.DurationFlag{Name: "duration", Value: 3 * time.Second, Usage: "how long each level runs, for assignments and raw publishes each"},
			&cli.IntFlag{Name: "requests", Usage: "requests per volunteer at each level instead of --duration (0: use --duration)"},
			&cli.IntSliceFlag{Name: "volunteers", Value: cli.NewIntSlice(1, 8, 64), Usage: "levels: volunteers requesting at once"},
			&cli.StringSliceFlag{Name: "transport", Value: cli.NewStringSlice(string(bench.TCP), string(bench.InProcess)),
				Usage: "how volunteers connect: tcp (loopback), in-process (no socket)"},
			&cli.IntFlag{Name: "slots", Value: 1, Usage: "tasks each work request asks for (a volunteer's free slots), 1 to 256"},
			&cli.IntFlag{Name: "tasks", Usage: "tasks queued for each level (default 200000 for each slot)"},
			&cli.IntFlag{Name: "batch", Value: 64, Usage: "requests the gateway groups into one log record at most (1: none)"},
			&cli.BoolFlag{Name: "secure", Usage: "secured NATS: each volunteer attached with credentials and an account of its own (default: serve --open)"},
			&cli.BoolFlag{Name: "json", Usage: "print JSON"},
			&cli.StringFlag{Name: "cpuprofile", Usage: "write a CPU profile of the whole run (servers, queueing and volunteers alike) to this file"},
			&cli.StringFlag{Name: "work-cpuprofile", Usage: "write CPU profiles of the work requests alone, one per level (the first of its rounds), to FILE.TRANSPORT-VOLUNTEERS"},
		},
		Action: benchDispatch,
	}
}

func benchDispatch(c *cli.Context) error {
	ctx, stop, err := cliutil.BenchContext(c)
	if err != nil {
		return err
	}
	defer stop()
	cfg := bench.Config{
		Volunteers:  c.IntSlice("volunteers"),
		Duration:    c.Duration("duration"),
		Requests:    c.Int("requests"),
		Slots:       c.Int("slots"),
		Tasks:       c.Int("tasks"),
		Batch:       gateway.Batching{Max: c.Int("batch")},
		Secure:      c.Bool("secure"),
		WorkProfile: c.String("work-cpuprofile"),
		Logger:      cliutil.Logger(c),
		Progress: func(r bench.Row) {
			fmt.Fprintf(c.App.ErrWriter, "%s, %d volunteers, %d slots: %.0f assignments/s, %.0f raw publishes/s\n",
				r.Transport, r.Volunteers, r.Slots, r.AssignmentsPerSecond, r.RawPublish.PerSecond)
		},
	}
	for _, t := range c.StringSlice("transport") {
		cfg.Transports = append(cfg.Transports, bench.Transport(t))
	}
	rep, err := bench.Dispatch(ctx, cfg)
	if err != nil {
		return err
	}
	return cliutil.Output(c, rep, func(w io.Writer, rep bench.Report) error {
		return printDispatch(w, rep, c.Bool("secure"), c.Int("batch"))
	})
}

func printDispatch(out io.Writer, rep bench.Report, secure bool, batch int) error {
	ms := func(d time.Duration) string { return fmt.Sprintf("%.2fms", float64(d)/float64(time.Millisecond)) }
	us := func(d time.Duration) string {
		if d == 0 {
			return "-"
		}
		return fmt.Sprintf("%.0fµs", float64(d)/float64(time.Microsecond))
	}
	w := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	nats := "open (serve --open)"
	if secure {
		nats = "secured (volunteers attached, each with its own credentials and account)"
	}
	fmt.Fprintf(w, "work-unit dispatch on %d CPUs; NATS %s; up to %d requests per log record\n", rep.CPUs, nats, batch)
	fmt.Fprintf(w, "p50/p99: latency of one work request (raw: one publish); cpu/op: CPU time of the whole process per request\n")
	fmt.Fprintf(w, "echo/s: requests answered at once by a responder on the project's connection, nothing stored or applied;\n")
	fmt.Fprintf(w, "echo ratio: echo/s over raw publish/s, the ratio's ceiling for any path that answers through NATS\n\n")
	fmt.Fprintln(w, "transport\tvolunteers\tslots\tassignments/s\tp50\tp99\tcpu/op\traw publish/s\traw p50\traw p99\traw cpu/op\tratio\techo/s\techo cpu/op\techo ratio")
	for _, r := range rep.Rows {
		fmt.Fprintf(w, "%s\t%d\t%d\t%.0f\t%s\t%s\t%s\t%.0f\t%s\t%s\t%s\t%.2f\t%.0f\t%s\t%.2f\n", r.Transport, r.Volunteers, r.Slots,
			r.AssignmentsPerSecond, ms(r.Dispatch.P50), ms(r.Dispatch.P99), us(r.Dispatch.CPUPerRequest),
			r.RawPublish.PerSecond, ms(r.RawPublish.P50), ms(r.RawPublish.P99), us(r.RawPublish.CPUPerRequest), r.Ratio,
			r.Echo.PerSecond, us(r.Echo.CPUPerRequest), r.EchoRatio)
	}
	return w.Flush()
}
