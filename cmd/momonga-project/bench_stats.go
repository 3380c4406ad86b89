package main

import (
	"fmt"
	"io"
	"text/tabwriter"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/momonga-project/momonga/cmd/internal/cliutil"
	"github.com/momonga-project/momonga/project/statsbench"
)

func benchStatsCommand() *cli.Command {
	return &cli.Command{
		Name:  "stats",
		Usage: "the stats site at a large project's size: page latencies, a full BOINC export, memory",
		Description: "Builds a population through the real scheduler and accounting state machines (teams, users, hosts\n" +
			"attached to them, grants over --days days), serves it from vpeer members over loopback HTTP as a\n" +
			"project server does, asks each page --requests times one after another, writes the whole export\n" +
			"and reports the live heap and the process's memory.",
		Flags: []cli.Flag{
			&cli.IntFlag{Name: "hosts", Value: 1_000_000},
			&cli.IntFlag{Name: "users", Value: 100_000},
			&cli.IntFlag{Name: "teams", Value: 10_000},
			&cli.IntFlag{Name: "grants", Usage: "validated results credited (default 3 per host)"},
			&cli.IntFlag{Name: "days", Value: 30, Usage: "the grants span this many days up to the scheduler's time"},
			&cli.IntFlag{Name: "requests", Value: 1000, Usage: "requests for each page"},
			&cli.Uint64Flag{Name: "seed", Value: 1},
			&cli.BoolFlag{Name: "json", Usage: "print JSON"},
			&cli.StringFlag{Name: "cpuprofile", Usage: "write a CPU profile of the whole run to this file"},
			&cli.StringFlag{Name: "memprofile", Usage: "write a profile of the whole run's allocations to this file"},
		},
		Action: func(c *cli.Context) error {
			ctx, stop, err := cliutil.BenchContext(c)
			if err != nil {
				return err
			}
			defer stop()
			rep, err := statsbench.Run(ctx, statsbench.Config{
				Hosts: c.Int("hosts"), Users: c.Int("users"), Teams: c.Int("teams"), Grants: c.Int("grants"), Days: c.Int("days"),
				Requests: c.Int("requests"), Seed: c.Uint64("seed"), Logger: cliutil.Logger(c),
				Progress: func(s string) { fmt.Fprintln(c.App.ErrWriter, s) },
			})
			if err != nil {
				return err
			}
			if err := cliutil.MemProfile(c.String("memprofile")); err != nil {
				return err
			}
			return cliutil.Output(c, rep, func(w io.Writer, rep statsbench.Report) error { printStats(w, rep); return nil })
		},
	}
}

func ms(d time.Duration) string { return fmt.Sprintf("%.2fms", float64(d)/1e6) }

func mb(n int64) string { return fmt.Sprintf("%.1f MB", float64(n)/1e6) }

func printStats(w io.Writer, r statsbench.Report) {
	c := r.Config
	fmt.Fprintf(w, "population: %d hosts, %d users, %d teams (largest %d members, most hosts of a user %d); %d grants over %d days\n",
		c.Hosts, c.Users, c.Teams, r.LargestTeam, r.MostHosts, c.Grants, c.Days)
	fmt.Fprintf(w, "built through Apply: scheduler %.1f s, accounting %.1f s\n\n", r.SchedBuild.Seconds(), r.AcctBuild.Seconds())
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "page\tpath (example)\trequests\tp50\tp99\tmax\tcpu/request\tbytes")
	for _, p := range r.Pages {
		fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t%s\t%s\t%s\t%d\n", p.Name, p.Path, p.Requests, ms(p.P50), ms(p.P99), ms(p.Max), ms(p.CPU), p.Bytes)
	}
	tw.Flush()
	total := int64(0)
	for _, n := range r.ExportFiles {
		total += n
	}
	fmt.Fprintf(w, "\nexport: %.1f s (%.1f s of CPU), %s (user.gz %s, team.gz %s, host.gz %s, tables.xml %d bytes); %d users, %d teams, %d hosts\n",
		r.Export.Seconds(), r.ExportCPU.Seconds(), mb(total), mb(r.ExportFiles["user.gz"]), mb(r.ExportFiles["team.gz"]), mb(r.ExportFiles["host.gz"]), r.ExportFiles["tables.xml"],
		r.Exported.Users, r.Exported.Teams, r.Exported.Hosts)
	fmt.Fprintf(w, "memory: live heap %s (scheduler %s, accounting %s); RSS %s serving, peak %s\n",
		mb(int64(r.HeapSched+r.HeapAcct)), mb(int64(r.HeapSched)), mb(int64(r.HeapAcct)), mb(int64(r.RSS)), mb(int64(r.PeakRSS)))
	fmt.Fprintf(w, "accounting snapshot: %s, written in %.1f s, restored in %.1f s\n",
		mb(int64(r.AcctSnapshot)), r.SnapshotWrite.Seconds(), r.SnapshotRead.Seconds())
}
