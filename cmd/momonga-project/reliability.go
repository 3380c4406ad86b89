package main

import (
	"errors"
	"fmt"
	"io"
	"math"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/momonga-project/momonga/cmd/internal/cliutil"
	"github.com/momonga-project/momonga/vpeer/reliability"
)

func reliabilityCommand() *cli.Command {
	return &cli.Command{
		Name:  "reliability",
		Usage: "probability that a virtual peer survives a given time, and its mean time to failure, as members depart and are replaced",
		Description: "Models a virtual peer of n members, each departing independently with the given half-life; each\n" +
			"departure starts a replacement that arrives after --replace on average (exponentially distributed,\n" +
			"one per missing member, in parallel). The group fails once fewer than a majority (n/2+1) are live.\n" +
			"For each member count it prints R(t), the probability that the group survives --hours, and its\n" +
			"mean time to failure, computed exactly from a continuous-time Markov chain and, beside them,\n" +
			"estimated by simulating the members one by one; then the smallest group reaching --target.\n" +
			"The model is documented in package vpeer/reliability.",
		Flags: []cli.Flag{
			&cli.IntSliceFlag{Name: "members", Value: cli.NewIntSlice(1, 3, 5, 7, 9), Usage: "member counts to compute, comma-separated"},
			&cli.DurationFlag{Name: "half-life", Value: time.Hour, Usage: "time by which half of the members have departed"},
			&cli.DurationFlag{Name: "replace", Value: time.Minute, Usage: "mean time from a departure until its replacement serves"},
			&cli.Float64Flag{Name: "hours", Value: 24, Usage: "the time to survive, in hours"},
			&cli.Float64Flag{Name: "target", Value: 0.99, Usage: "report the smallest group that survives --hours with at least this probability"},
			&cli.IntFlag{Name: "trials", Value: 100_000, Usage: "simulated groups per member count for R(t), and the most failures simulated for the MTTF (0: no simulation)"},
			&cli.Int64Flag{Name: "mttf-events", Value: 30_000_000, Usage: "stop simulating a member count's MTTF after this many departures and arrivals (0: no limit)"},
			&cli.Uint64Flag{Name: "seed", Value: 1, Usage: "random seed; each member count draws its own streams from it, so a row does not depend on the others"},
			&cli.BoolFlag{Name: "json", Usage: "print JSON"},
		},
		Action: reliabilityAction,
	}
}

func reliabilityAction(c *cli.Context) error {
	if c.NArg() > 0 {
		return fmt.Errorf("unexpected argument %q: member counts go in --members, e.g. --members 3,5,7", c.Args().First())
	}
	hours := c.Float64("hours")
	if !(hours > 0) || hours*float64(time.Hour) >= math.MaxInt64 {
		return fmt.Errorf("--hours must be a positive number of hours below %.0f, got %g", float64(math.MaxInt64)/float64(time.Hour), hours)
	}
	trials := c.Int("trials")
	if trials < 0 {
		return fmt.Errorf("--trials must be 0 (no simulation) or more, got %d", trials)
	}
	members := c.IntSlice("members")
	if len(members) == 0 {
		return errors.New("--members needs at least one member count, e.g. --members 3,5,7")
	}
	rep, err := reliability.NewReport(reliability.ReportConfig{
		Members:    members,
		HalfLife:   c.Duration("half-life"),
		Replace:    c.Duration("replace"),
		Hours:      hours,
		Target:     c.Float64("target"),
		Trials:     trials,
		MTTFEvents: c.Int64("mttf-events"),
		Seed:       c.Uint64("seed"),
	})
	if err != nil {
		return err
	}
	return cliutil.Output(c, rep, func(w io.Writer, rep reliability.Report) error { return rep.Print(w) })
}
