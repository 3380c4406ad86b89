package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"sort"
	"text/tabwriter"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/momonga-project/momonga/cmd/internal/cliutil"
	"github.com/momonga-project/momonga/project/chaos"
)

func chaosCommand() *cli.Command {
	return &cli.Command{
		Name:  "chaos",
		Usage: "run the scheduler's virtual peer while its members are killed and replaced, under a steady stream of volunteer requests, and compare with the reliability model",
		Description: "Starts a project server with an embedded NATS server in a temporary directory, whose scheduler\n" +
			"members all run in child processes (this program again, `vpeer chaos-member`, joining as\n" +
			"`serve --join --members 1` does). Simulated volunteers send --rate requests a second through the\n" +
			"gateway (work requests and results, each retried with its sequence number until answered). Each\n" +
			"member process is killed with SIGKILL after an exponentially distributed lifetime (half-life\n" +
			"--half-life, drawn from --seed) and a new process starts --replace later; it takes the dead\n" +
			"member's slot once it lapses (--lapse), restores the newest snapshot and replays the log.\n" +
			"After --duration the kills stop; unanswered requests are retried, every member hashes its state\n" +
			"at one snapshot point, and a fresh replica audits the scheduler's state against what the\n" +
			"volunteers saw (no task given twice, no acknowledged result lost).",
		Flags: []cli.Flag{
			&cli.IntFlag{Name: "members", Value: 5, Usage: "members of the virtual peer, one process each"},
			&cli.DurationFlag{Name: "half-life", Value: 30 * time.Second, Usage: "time within which half of the member processes are killed"},
			&cli.DurationFlag{Name: "replace", Value: 2 * time.Second, Usage: "from a kill until the replacement process starts"},
			&cli.DurationFlag{Name: "duration", Value: time.Minute, Usage: "how long members are killed and volunteers send requests"},
			&cli.Uint64Flag{Name: "seed", Value: 1, Usage: "seed of the kill schedule: the same seed kills the same processes at the same times"},
			&cli.Float64Flag{Name: "rate", Value: chaos.DefaultRate, Usage: "volunteer requests per second"},
			&cli.IntFlag{Name: "volunteers", Value: chaos.DefaultVolunteers, Usage: "simulated volunteer hosts, each with its own connection"},
			&cli.DurationFlag{Name: "timeout", Value: chaos.DefaultTimeout, Usage: "a request not answered within this is an error (and is sent again)"},
			&cli.DurationFlag{Name: "gap", Value: chaos.DefaultGap, Usage: "report the windows longer than this in which no request was served"},
			&cli.DurationFlag{Name: "heartbeat", Value: chaos.DefaultHeartbeat, Usage: "how often members renew their slots"},
			&cli.DurationFlag{Name: "lapse", Value: chaos.DefaultLapse, Usage: "a slot not renewed for this long goes to a replacement"},
			&cli.Uint64Flag{Name: "snapshot-every", Value: chaos.DefaultSnapshotEvery, Usage: "log records between snapshots"},
			&cli.StringFlag{Name: "data", Usage: "keep the project's data and the member processes' logs here (default: a temporary directory)"},
			&cli.BoolFlag{Name: "events", Usage: "also list every start, ready, kill and exit of a member process"},
			&cli.BoolFlag{Name: "json", Usage: "print JSON"},
		},
		Action: chaosAction,
	}
}

// chaosMemberCommand is what each member process of `vpeer chaos` runs.
func chaosMemberCommand() *cli.Command {
	return &cli.Command{
		Name:            "chaos-member",
		Hidden:          true,
		Usage:           "one member process of `vpeer chaos` (started by it)",
		SkipFlagParsing: true,
		Action: func(c *cli.Context) error {
			ctx, stop := cliutil.SignalContext(context.Background())
			defer stop()
			logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
			return chaos.MemberMain(ctx, c.Args().Slice(), os.Stdin, os.Stdout, logger)
		},
	}
}

func chaosAction(c *cli.Context) error {
	if c.NArg() > 0 {
		return fmt.Errorf("unexpected argument %q: vpeer chaos takes only flags", c.Args().First())
	}
	exe, err := os.Executable()
	if err != nil {
		return fmt.Errorf("find this program to start member processes: %w", err)
	}
	cfg := chaos.Config{
		Members:       c.Int("members"),
		HalfLife:      c.Duration("half-life"),
		Replace:       c.Duration("replace"),
		Duration:      c.Duration("duration"),
		Seed:          c.Uint64("seed"),
		Rate:          c.Float64("rate"),
		Volunteers:    c.Int("volunteers"),
		Timeout:       c.Duration("timeout"),
		Gap:           c.Duration("gap"),
		Heartbeat:     c.Duration("heartbeat"),
		Lapse:         c.Duration("lapse"),
		SnapshotEvery: c.Uint64("snapshot-every"),
		Tick:          chaos.DefaultTick,
		DataDir:       c.String("data"),
		MemberCommand: func(args []string) *exec.Cmd {
			return exec.Command(exe, append([]string{"vpeer", "chaos-member"}, args...)...)
		},
		Logger: cliutil.Logger(c),
		Progress: func(format string, args ...any) {
			fmt.Fprintf(c.App.ErrWriter, time.Now().Format("15:04:05 ")+format+"\n", args...)
		},
	}
	if cfg.SnapshotEvery == 0 {
		return errors.New("--snapshot-every must be at least 1")
	}
	if err := cfg.Validate(); err != nil {
		return err
	}
	ctx, stop := cliutil.SignalContext(context.Background())
	defer stop()
	rep, err := chaos.Run(ctx, cfg)
	if err != nil {
		return err
	}
	return cliutil.Output(c, rep, func(w io.Writer, rep chaos.Report) error { return printChaos(w, rep, c.Bool("events")) })
}

func seconds(d time.Duration) string { return fmt.Sprintf("%.2f s", d.Seconds()) }

func printChaos(out io.Writer, rep chaos.Report, events bool) error {
	w := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	majority := rep.Members/2 + 1
	fmt.Fprintf(w, "chaos run: %d members (majority %d), half-life %s, replacement started %s after a kill, %s, seed %d\n",
		rep.Members, majority, rep.HalfLife, rep.Replace, rep.Duration, rep.Seed)
	fmt.Fprintf(w, "%g requests/s from %d volunteers, timeout %s; slots lapse after %s; snapshots every %d records; %d work units queued\n\n",
		rep.Rate, rep.Volunteers, rep.Timeout, rep.Lapse, rep.SnapshotEvery, rep.Units)

	fmt.Fprintln(w, "VOLUNTEERS")
	fmt.Fprintf(w, "requests sent\t%d (%.1f/s)\n", rep.Requests, float64(rep.Requests)/rep.Duration.Seconds())
	fmt.Fprintf(w, "served\t%d (%.2f%%), p50 %s, p99 %s\n", rep.Served, 100*float64(rep.Served)/float64(max(1, rep.Requests)), rep.P50.Round(10*time.Microsecond), rep.P99.Round(10*time.Microsecond))
	kinds := make([]string, 0, len(rep.Errors))
	for k := range rep.Errors {
		kinds = append(kinds, k)
	}
	sort.Strings(kinds)
	if len(kinds) == 0 {
		fmt.Fprintf(w, "errors\tnone\n")
	}
	for _, k := range kinds {
		fmt.Fprintf(w, "errors: %s\t%d\n", k, rep.Errors[k])
	}
	fmt.Fprintf(w, "not sent (every volunteer waiting)\t%d\n", rep.Skipped)
	fmt.Fprintf(w, "longest time without a request served\t%s, from %s\n", seconds(rep.Longest), seconds(rep.LongestAt))
	fmt.Fprintf(w, "unavailability windows (> %s)\t%d\n", rep.Gap, len(rep.Windows))
	for _, win := range rep.Windows {
		fmt.Fprintf(w, "  from %s\t%s, fewest members serving %d\n", seconds(win.Start), seconds(win.Length), win.MinLive)
	}

	fmt.Fprintln(w, "\nMEMBERS")
	fmt.Fprintf(w, "kills (SIGKILL)\t%d (schedule for the seed: %d; expected %.1f = members × duration × ln2/half-life, %.1f allowing for replacement delays)\n",
		rep.Kills, rep.PlannedKills, rep.ExpectedKills, rep.ExpectedPlannedKills)
	fmt.Fprintf(w, "  of which before the member was ready\t%d\n", rep.KilledBeforeReady)
	fmt.Fprintf(w, "  of which of the lease holder\t%d\n", rep.LeaseHolderKills)
	fmt.Fprintf(w, "processes that ended by themselves\t%d\n", rep.Exits)
	fmt.Fprintf(w, "replacements serving\t%d, %d from a snapshot; kill → serving mean %s, max %s\n", rep.Replacements, rep.RestoredSnapshot, seconds(rep.ReplaceMean), seconds(rep.ReplaceMax))
	fmt.Fprintf(w, "members serving\tmean %.2f of %d, fewest %d\n", rep.Live.MeanAlive, rep.Members, rep.FewestLive)
	fmt.Fprintf(w, "fewer than a majority serving\t%s in all, %d times, longest %s\n", seconds(rep.Live.BelowMajority.Total), rep.Live.BelowMajority.Count, seconds(rep.Live.BelowMajority.Longest))
	fmt.Fprintf(w, "no member serving\t%s in all, %d times, longest %s\n", seconds(rep.Live.None.Total), rep.Live.None.Count, seconds(rep.Live.None.Longest))

	fmt.Fprintln(w, "\nMODEL (vpeer reliability, same members and half-life)")
	fmt.Fprintf(w, "P(majority lost within %s)\t%.4g with τ = %s", rep.Duration, rep.ModelLoseMajority, rep.Replace)
	if rep.ReplaceMean > 0 {
		fmt.Fprintf(w, "; %.4g with τ = %s measured", rep.ModelLoseMajorityMeasured, seconds(rep.ReplaceMean))
	}
	fmt.Fprintf(w, "\nP(no member live within %s)\t%.4g with τ = %s", rep.Duration, rep.ModelNoneLive, rep.Replace)
	if rep.ReplaceMean > 0 {
		fmt.Fprintf(w, "; %.4g with τ = %s measured", rep.ModelNoneLiveMeasured, seconds(rep.ReplaceMean))
	}
	fmt.Fprintln(w)
	if rep.ModelError != "" {
		fmt.Fprintf(w, "model error\t%s\n", rep.ModelError)
	}
	fmt.Fprintf(w, "observed\tmajority lost: %s; no member serving: %s\n", yesNo(rep.Live.BelowMajority.Count > 0), yesNo(rep.Live.None.Count > 0))

	e := rep.End
	fmt.Fprintln(w, "\nEND")
	fmt.Fprintf(w, "requests retried after the run\t%d (volunteers still unanswered: %d)\n", e.Retried, e.Unanswered)
	fmt.Fprintf(w, "group whole again\t%s after the run\n", seconds(e.WholeAfter))
	printHashes(w, "state hashes", e.Common, e.Hashes, e.Agree)
	fmt.Fprintf(w, "fresh replica's hash at %d\t%s (%s)\n", e.Common, short(e.AuditHash), map[bool]string{true: "agrees", false: "DISAGREES or missing"}[e.AuditAgrees])
	printHashes(w, "accounting peer's hashes", e.AcctCommon, e.AcctHashes, e.AcctAgree)
	fmt.Fprintf(w, "credit counted\t%d grants made by the scheduler; a fresh accounting replica applied %d, counting %d results (%.6g credit)\n", e.Outputs, e.AcctThrough, e.AcctResults, e.AcctCredit)
	fmt.Fprintf(w, "tasks given to volunteers\t%d, to two hosts: %d\n", e.Assigned, len(e.Duplicates))
	fmt.Fprintf(w, "results acknowledged\t%d; the scheduler has %d reported, %d units valid; refused: %d\n", e.Acked, e.StateReported, e.StateValid, len(e.Refused))
	fmt.Fprintf(w, "tasks out on volunteers\t%d held, the scheduler has %d assigned\n", e.Held, e.StateAssigned)
	for _, d := range e.Duplicates {
		fmt.Fprintf(w, "  given twice\t%s\n", d)
	}
	for _, m := range e.Mismatches {
		fmt.Fprintf(w, "  mismatch\t%s\n", m)
	}
	for _, msg := range e.Errors {
		fmt.Fprintf(w, "  error\t%s\n", msg)
	}
	fmt.Fprintf(w, "exactly once\t%s\n", yesNo(e.ExactlyOnce))
	if err := w.Flush(); err != nil {
		return err
	}
	fmt.Fprintf(out, "\n%s\n", chaosNote)
	if events {
		fmt.Fprintln(w, "\nAT\tPOSITION\tPROCESS\tEVENT\tMEMBER\tDETAIL")
		for _, ev := range rep.Events {
			fmt.Fprintf(w, "%s\t%d\t%d\t%s\t%s\t%s\n", seconds(ev.At), ev.Position, ev.Gen, ev.Kind, ev.Member, ev.Detail)
		}
	}
	return w.Flush()
}

// chaosNote says how to read the model beside the run.
const chaosNote = `What the model's failure means here: the model counts a group as failed once fewer than a majority
of its members live, because a group that orders entries among its members cannot go on without one.
This group's log is a JetStream stream, ordered by the NATS server, so the members need no majority:
any one member that has caught up with the log answers every request, and the others only add
answers the volunteer ignores. A request goes unanswered only while no member serves (every one dead,
or its replacement still waiting for the slot to lapse, restoring a snapshot or replaying), or while
the log itself cannot be written. The unavailability windows above are those times; P(no member live)
is the model's figure for them. Fewer than a majority serving costs nothing visible, except that while
the lease holder is gone (until its lease lapses) no tick enters the log, so leases and deadlines
are not judged.`

func firstHash(m map[string]string) string {
	for _, h := range m {
		return h
	}
	return ""
}

func short(h string) string {
	if len(h) > 16 {
		return h[:16]
	}
	if h == "" {
		return "-"
	}
	return h
}

// printHashes prints whether a group's members agreed at a snapshot point.
func printHashes(w io.Writer, what string, at uint64, hashes map[string]string, agree bool) {
	switch {
	case hashes == nil:
		fmt.Fprintf(w, "%s\tnot compared\n", what)
	case agree:
		fmt.Fprintf(w, "%s at %d\tall %d members agree (%s)\n", what, at, len(hashes), short(firstHash(hashes)))
	default:
		fmt.Fprintf(w, "%s at %d\tMEMBERS DISAGREE\n", what, at)
		for id, h := range hashes {
			fmt.Fprintf(w, "  %s\t%s\n", id, short(h))
		}
	}
}
