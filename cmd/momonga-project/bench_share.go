package main

import (
	"context"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"

	"github.com/urfave/cli/v2"

	"github.com/momonga-project/momonga/cmd/internal/cliutil"
	"github.com/momonga-project/momonga/cmd/internal/demo"
)

func benchShareCommand() *cli.Command {
	return &cli.Command{
		Name:  "share",
		Usage: "the study's experiment on 3 real volunteers, one fast and two slowed: first come first served against capability-aware scheduling with shared results",
		Description: "Three volunteer clients on this machine each need the inverses of matrices of order --step·n,\n" +
			"n = 1..--count (the same ones: apps/matinv, a matrix made from a seed). Two are slowed with\n" +
			"cpu_usage_limit. The project runs twice from scratch: default (first come first served, every\n" +
			"unit computed: submit --no-share) and proposed (capability-aware scheduling, shared results).\n" +
			"The time is from the submission to the last result validated.",
		Flags: []cli.Flag{
			&cli.IntFlag{Name: "step", Value: 250, Usage: "order of the smallest matrix"},
			&cli.IntFlag{Name: "count", Value: 5, Usage: "matrices each volunteer needs"},
			&cli.Float64Flag{Name: "slow-limit", Value: 5, Usage: "cpu_usage_limit of the slowed volunteers, per cent"},
			&cli.StringFlag{Name: "data", Usage: "data directory to keep (default: a temporary one)"},
			&cli.BoolFlag{Name: "json", Usage: "print JSON"},
		},
		Action: benchShare,
	}
}

func benchShare(c *cli.Context) error {
	ctx, stop := cliutil.SignalContext(context.Background())
	defer stop()
	rep, err := demo.Share(ctx, demo.ShareConfig{
		Step: c.Int("step"), Count: c.Int("count"), SlowLimit: c.Float64("slow-limit"), DataDir: c.String("data"),
		Logger: cliutil.Logger(c),
		Progress: func(r demo.ShareRun) {
			fmt.Fprintf(c.App.ErrWriter, "%s: %.1f s, %d matrices inverted\n", r.Mode, r.Seconds, r.Computed)
		},
	})
	if err != nil {
		return err
	}
	return cliutil.Output(c, rep, printShare)
}

func printShare(out io.Writer, rep demo.ShareReport) error {
	w := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintf(w, "the study's workload: 3 volunteers (1 fast, 2 slowed to %g%% with cpu_usage_limit), each needing the inverses of\n", rep.SlowLimit)
	fmt.Fprintf(w, "matrices of order %d·n, n = 1..%d (the same %d matrices for all three)\n\n", rep.Step, rep.Count, rep.Count)
	fmt.Fprintln(w, "mode\tmatrices inverted\ttime\tfast inverted (busy)\tslow-1 inverted (busy)\tslow-2 inverted (busy)")
	for _, r := range rep.Runs {
		fmt.Fprintf(w, "%s\t%d\t%.1f s", r.Mode, r.Computed, r.Seconds)
		for _, v := range []string{"fast", "slow-1", "slow-2"} {
			fmt.Fprintf(w, "\t%s (%.1f s)", orders(r.ByVolunteer[v]), r.Busy[v])
		}
		fmt.Fprintln(w)
	}
	fmt.Fprintf(w, "\nspeed-up: %.2f× (the study: %.0f ms → %.0f ms, %.2f×)\n", rep.SpeedUp, demo.Study.BaselineMS, demo.Study.ProposalMS,
		demo.Study.BaselineMS/demo.Study.ProposalMS)
	if err := w.Flush(); err != nil {
		return err
	}
	printShareLimits(out, rep)
	return nil
}

// printShareLimits says what bounds each run's time: the volunteer busy
// longest, and what is left over, which is the project's and the clients'
// own (dispatch, downloads, uploads, validation, waits between requests).
func printShareLimits(out io.Writer, rep demo.ShareReport) {
	fmt.Fprintln(out, "\nwhat limits it:")
	for _, r := range rep.Runs {
		longest, busy := "", 0.0
		for _, v := range []string{"fast", "slow-1", "slow-2"} {
			if r.Busy[v] > busy {
				longest, busy = v, r.Busy[v]
			}
		}
		fmt.Fprintf(out, "  %s: %s computed longest, %.1f s of the %.1f s; the other %.1f s are dispatch, transfers, validation and waits\n",
			r.Mode, longest, busy, r.Seconds, max(r.Seconds-busy, 0))
	}
	if len(rep.Runs) == 2 && rep.Runs[1].Seconds > 0 {
		d, p := rep.Runs[0], rep.Runs[1]
		pb := max(p.Busy["fast"], p.Busy["slow-1"], p.Busy["slow-2"])
		if pb > 0 {
			fmt.Fprintf(out, "  with no overhead at all the proposed run would take %.1f s, a speed-up of %.2f× at most on this machine\n", pb, d.Seconds/pb)
		}
	}
}

func orders(o []int) string {
	if len(o) == 0 {
		return "-"
	}
	s := make([]string, len(o))
	for i, n := range o {
		s[i] = fmt.Sprint(n)
	}
	return strings.Join(s, ",")
}
