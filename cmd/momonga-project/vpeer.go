package main

import (
	"context"
	"fmt"
	"io"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/urfave/cli/v2"

	"github.com/momonga-project/momonga/cmd/internal/cliutil"
	"github.com/momonga-project/momonga/project/server"
	"github.com/momonga-project/momonga/project/vpeerbench"
	"github.com/momonga-project/momonga/vpeer"
	"github.com/momonga-project/momonga/vpeer/jetlog"
)

// membersFlag sizes the scheduler's virtual peer. MOMONGA_MEMBERS sets it
// for commands started by scripts and tests that do not pass it.
var membersFlag = &cli.IntFlag{Name: "members", Value: 1, EnvVars: []string{"MOMONGA_MEMBERS"},
	Usage: "members of each of the project's virtual peers (the scheduler's and the accounting's), each applying its whole log (with --join: how many of each this process may run)"}

// join runs `serve --join`: members of the virtual peer of the project at
// --nats-url, taking slots that are free or lapse, until ctx ends.
func join(ctx context.Context, c *cli.Context) error {
	cfg := server.Joining(c.String("nats-url"), toolOptions(c)...)
	cfg.Members, cfg.Logger = c.Int("members"), cliutil.Logger(c)
	srv, err := server.Start(ctx, cfg)
	if err != nil {
		return err
	}
	fmt.Printf("momonga-project %s joined virtual peers %s and %s at %s as %s: up to %d members of each\n",
		cliutil.Version, server.Group, server.AcctGroup, c.String("nats-url"), srv.Group().Process(), c.Int("members"))
	select {
	case <-ctx.Done():
	case <-srv.Done():
	}
	return srv.Close()
}

func vpeerCommand() *cli.Command {
	return &cli.Command{
		Name:  "vpeer",
		Usage: "operate and model the project's virtual peers (the replicated scheduler and accounting)",
		Subcommands: []*cli.Command{
			reliabilityCommand(),
			chaosCommand(),
			chaosMemberCommand(),
			{
				Name:  "status",
				Usage: "show each virtual peer: members, applied sequence and lag, state hashes at a common sequence, lease holder, snapshots",
				Flags: append(toolFlags(),
					&cli.StringFlag{Name: "group", Usage: "only this virtual peer (default: all)"},
					&cli.DurationFlag{Name: "wait", Value: 300 * time.Millisecond, Usage: "how long to wait for more processes to answer"},
					&cli.BoolFlag{Name: "json", Usage: "print JSON"},
				),
				Action: vpeerStatus,
			},
			{
				Name:  "snapshot",
				Usage: "take a snapshot now: every member records its state hash and the lease holder stores a snapshot",
				Flags: append(toolFlags(),
					&cli.StringFlag{Name: "group", Value: "sched", Usage: "virtual peer (sched or acct)"},
					&cli.DurationFlag{Name: "timeout", Value: 30 * time.Second, Usage: "how long to wait for the snapshot"},
				),
				Action: vpeerSnapshot,
			},
		},
	}
}

func dialNATS(c *cli.Context) (context.Context, *nats.Conn, func(), error) {
	ctx, stop := cliutil.SignalContext(context.Background())
	nc, err := nats.Connect(c.String("server"), append(toolOptions(c), nats.Name("momonga-project vpeer"))...)
	if err != nil {
		stop()
		return nil, nil, nil, fmt.Errorf("connect to %s: %w", c.String("server"), err)
	}
	return ctx, nc, func() { nc.Close(); stop() }, nil
}

func vpeerStatus(c *cli.Context) error {
	ctx, nc, done, err := dialNATS(c)
	if err != nil {
		return err
	}
	defer done()
	reports, err := jetlog.GatherStatus(ctx, nc, c.String("group"), c.Duration("wait"))
	if err != nil {
		return err
	}
	if len(reports) == 0 {
		return fmt.Errorf("no virtual peer answered at %s", c.String("server"))
	}
	groups := vpeer.Summarize(reports)
	return cliutil.Output(c, groups, printGroups)
}

func printGroups(out io.Writer, groups []vpeer.GroupSummary) error {
	w := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	for i, g := range groups {
		if i > 0 {
			fmt.Fprintln(w)
		}
		fmt.Fprintf(w, "virtual peer %s: %d of %d members, log at %d, lease held by %s\n", g.Group, len(g.Members), g.Size, g.LogLast, orNone(g.Lease))
		hashCol := "HASH"
		if g.Common > 0 {
			hashCol = fmt.Sprintf("HASH AT %d", g.Common)
		}
		fmt.Fprintf(w, "MEMBER\tSLOT\tAPPLIED\tLAG\tREADY\tLEASE\tSTARTED FROM\t%s\n", hashCol)
		for _, m := range g.Members {
			from := "full replay"
			if m.Restored != nil {
				from = fmt.Sprintf("snapshot %d", m.Restored.Seq)
			}
			lease := ""
			if m.Leading {
				lease = "holder"
			}
			hash := "-"
			if h, ok := g.Hashes[m.ID]; ok {
				hash = h[:16]
			}
			fmt.Fprintf(w, "%s\t%d\t%d\t%d\t%s\t%s\t%s\t%s\n", m.ID, m.Slot, m.Applied, m.LogLast-min(m.Applied, m.LogLast), yesNo(m.Ready), lease, from, hash)
		}
		switch {
		case g.Common == 0:
			fmt.Fprintln(w, "state hashes: no snapshot point common to all members yet (momonga-project vpeer snapshot makes one)")
		case g.Agree:
			fmt.Fprintf(w, "state hashes at %d: all %d members agree\n", g.Common, len(g.Hashes))
		default:
			fmt.Fprintf(w, "state hashes at %d: MEMBERS DISAGREE\n", g.Common)
		}
		if len(g.Snapshots) == 0 {
			fmt.Fprintln(w, "snapshots: none")
		}
		for _, s := range slices.Backward(g.Snapshots) {
			fmt.Fprintf(w, "snapshot at %d: %d bytes, stored %s, tick time %s\n", s.Seq, s.Size, s.Stored.Format(time.RFC3339), s.Time.Format(time.RFC3339))
		}
		for _, m := range g.Members {
			if len(m.Skipped) > 0 {
				fmt.Fprintf(w, "member %s skipped undecodable records %v\n", m.ID, m.Skipped)
			}
		}
		if len(g.Spares) > 0 {
			fmt.Fprintf(w, "spare processes: %s\n", strings.Join(g.Spares, ", "))
		}
		for _, e := range g.Errors {
			fmt.Fprintf(w, "error: %s\n", e)
		}
	}
	return w.Flush()
}

func orNone(s string) string {
	if s == "" {
		return "nobody"
	}
	return s
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

func vpeerSnapshot(c *cli.Context) error {
	ctx, nc, done, err := dialNATS(c)
	if err != nil {
		return err
	}
	defer done()
	ctx, cancel := context.WithTimeout(ctx, c.Duration("timeout"))
	defer cancel()
	group := c.String("group")
	seq, err := jetlog.RequestSnapshot(ctx, nc, group)
	if err != nil {
		return err
	}
	t := time.NewTicker(200 * time.Millisecond)
	defer t.Stop()
	for {
		reports, err := jetlog.GatherStatus(ctx, nc, group, 200*time.Millisecond)
		if err != nil {
			return err
		}
		for _, g := range vpeer.Summarize(reports) {
			stored := len(g.Snapshots) > 0 && g.Snapshots[len(g.Snapshots)-1].Seq >= seq
			if g.Group == group && stored && g.Common >= seq {
				if !g.Agree {
					return fmt.Errorf("snapshot at %d stored, but the members' state hashes at %d disagree", seq, g.Common)
				}
				fmt.Fprintf(c.App.Writer, "virtual peer %s: snapshot at %d stored; all %d members agree on the state hash at %d\n", group, seq, len(g.Hashes), g.Common)
				return nil
			}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("snapshot at %d not stored within %s", seq, c.Duration("timeout"))
		case <-t.C:
		}
	}
}

// withVpeerBench adds `bench vpeer` to the bench command.
func withVpeerBench(bench *cli.Command) *cli.Command {
	bench.Subcommands = append(bench.Subcommands, benchVpeerCommand())
	return bench
}

func benchVpeerCommand() *cli.Command {
	return &cli.Command{
		Name:  "vpeer",
		Usage: "entries applied per second by 1, 3 and 5 scheduler members beside raw JetStream publishes, and time to restore and replay 10^5 and 10^6 work units",
		Description: "Runs an embedded NATS server in a temporary directory. For each group size, appends --entries work\n" +
			"requests to a fresh log, --window in flight, while the members apply them; then publishes as many\n" +
			"records the same way to a plain stream. For each size in --units, builds a scheduler that holds\n" +
			"that many work units, stores its snapshot, and times a new member until it is ready: from the\n" +
			"snapshot alone, and with --replay more records after it.",
		Flags: []cli.Flag{
			&cli.IntSliceFlag{Name: "members", Value: cli.NewIntSlice(1, 3, 5), Usage: "group sizes"},
			&cli.IntFlag{Name: "entries", Value: 100_000, Usage: "entries appended for each group size"},
			&cli.IntFlag{Name: "window", Value: 1024, Usage: "appends in flight"},
			&cli.IntSliceFlag{Name: "units", Value: cli.NewIntSlice(100_000, 1_000_000), Usage: "work units of the schedulers restored"},
			&cli.IntFlag{Name: "replay", Value: 10_000, Usage: "records replayed after the snapshot"},
			&cli.BoolFlag{Name: "json", Usage: "print JSON"},
			&cli.StringFlag{Name: "cpuprofile", Usage: "write a CPU profile of the whole run to this file"},
		},
		Action: func(c *cli.Context) error {
			ctx, stop, err := cliutil.BenchContext(c)
			if err != nil {
				return err
			}
			defer stop()
			rep, err := vpeerbench.Run(ctx, vpeerbench.Config{
				Members: c.IntSlice("members"),
				Entries: c.Int("entries"),
				Window:  c.Int("window"),
				Units:   c.IntSlice("units"),
				Replay:  c.Int("replay"),
				Logger:  cliutil.Logger(c),
				Progress: func(format string, args ...any) {
					fmt.Fprintf(c.App.ErrWriter, format+"\n", args...)
				},
			})
			if err != nil {
				return err
			}
			return cliutil.Output(c, rep, printVpeerBench)
		},
	}
}

func printVpeerBench(out io.Writer, rep vpeerbench.Report) error {
	w := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintf(w, "virtual peer on %d CPUs: entries applied by every member per second, beside raw JetStream publishes\n\n", rep.CPUs)
	fmt.Fprintln(w, "log\tmembers\tentries\tapplied/s\traw publish/s\tratio")
	for _, r := range rep.Apply {
		if !r.Measured {
			fmt.Fprintf(w, "%s\t%d\t-\t%s\t\t\n", r.Log, r.Members, r.Note)
			continue
		}
		fmt.Fprintf(w, "%s\t%d\t%d\t%.0f\t%.0f\t%.2f\n", r.Log, r.Members, r.Entries, r.Applied, r.Raw, r.Ratio)
	}
	fmt.Fprintln(w, "\nwork units\ttasks\tsnapshot\tbuilt in\trestore\trestore + replay")
	for _, r := range rep.Restore {
		fmt.Fprintf(w, "%d\t%d\t%.1f MB\t%.1f s\t%.2f s\t%.2f s (%d records)\n", r.Units, r.Tasks, float64(r.SnapshotBytes)/1e6,
			r.Build.Seconds(), r.Restore.Seconds(), r.RestoreReplay.Seconds(), r.Replayed)
	}
	return w.Flush()
}
