package main

import (
	"context"
	"fmt"
	"io"
	"text/tabwriter"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/momonga-project/momonga/cmd/internal/cliutil"
	"github.com/momonga-project/momonga/project/bench"
)

func benchScheduleCommand() *cli.Command {
	return &cli.Command{
		Name:  "schedule",
		Usage: "simulate a population of hosts at scale, first come first served and capability-aware",
		Description: "Drives the scheduler state machine in this process, no NATS, in virtual time: hosts of log-normal\n" +
			"speeds (benchmarks off by a random factor) and 1 to 8 cores, some unreliable (they drop half their\n" +
			"tasks), leaving after an exponential lifetime and replaced, work through units of three sizes with\n" +
			"deadlines (11 minutes / 6 h, 2 hours / 12 h, 9 hours / 24 h on a 3 GFLOPS core), submitted in ten\n" +
			"batches a quarter of an hour apart, with replication 1. Each policy runs on the same population.",
		Flags: []cli.Flag{
			&cli.IntFlag{Name: "hosts", Value: 10_000, Usage: "hosts at any time"},
			&cli.IntFlag{Name: "units", Value: 100_000, Usage: "work units"},
			&cli.Float64Flag{Name: "unreliable", Value: 0.1, Usage: "share of hosts that drop tasks"},
			&cli.DurationFlag{Name: "lifetime", Value: 72 * time.Hour, Usage: "a host's mean time before it leaves"},
			&cli.StringSliceFlag{Name: "policy", Value: cli.NewStringSlice("fcfs", "capability"), Usage: "policies to simulate: fcfs, capability"},
			&cli.Uint64Flag{Name: "seed", Value: 1, Usage: "seed of the simulation's randomness"},
			&cli.BoolFlag{Name: "json", Usage: "print JSON"},
		},
		Action: benchSchedule,
	}
}

func benchSchedule(c *cli.Context) error {
	ctx, stop := cliutil.SignalContext(context.Background())
	defer stop()
	rows, err := bench.Schedule(ctx, bench.ScheduleConfig{
		Hosts: c.Int("hosts"), Units: c.Int("units"), Unreliable: c.Float64("unreliable"), Lifetime: c.Duration("lifetime"),
		Policies: c.StringSlice("policy"), Seed: c.Uint64("seed"),
		Progress: func(r bench.ScheduleRow) {
			fmt.Fprintf(c.App.ErrWriter, "%s: makespan %s, %d missed deadlines (%.1f s)\n", r.Policy, hours(r.Makespan), r.MissedDeadlines, r.Seconds)
		},
	})
	if err != nil {
		return err
	}
	return cliutil.Output(c, rows, func(w io.Writer, rows []bench.ScheduleRow) error { return printSchedule(w, c, rows) })
}

func hours(d time.Duration) string { return fmt.Sprintf("%.1f h", d.Hours()) }

func printSchedule(out io.Writer, c *cli.Context, rows []bench.ScheduleRow) error {
	w := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintf(w, "scheduling simulation: %d hosts (%.0f%% unreliable, mean lifetime %s), %d work units, seed %d\n",
		c.Int("hosts"), 100*c.Float64("unreliable"), c.Duration("lifetime"), c.Int("units"), c.Uint64("seed"))
	fmt.Fprintf(w, "turnaround: from a unit's submission to its validation; wasted CPU: spent on results not used; missed: tasks past their deadline\n\n")
	fmt.Fprintln(w, "policy\tvalid\tfailed\tmakespan\tmean turnaround\tp99 turnaround\twasted CPU\tmissed deadlines\tassignments\tlog entries\tseconds")
	for _, r := range rows {
		fmt.Fprintf(w, "%s\t%d\t%d\t%s\t%s\t%s\t%.1f%%\t%d\t%d\t%d\t%.0f\n", r.Policy, r.Valid, r.Failed, hours(r.Makespan), hours(r.MeanTurnaround),
			hours(r.P99Turnaround), 100*r.WastedCPU, r.MissedDeadlines, r.Assignments, r.Entries, r.Seconds)
	}
	return w.Flush()
}
