package main

import (
	"context"
	"fmt"
	"io"
	"text/tabwriter"

	"github.com/urfave/cli/v2"

	"github.com/momonga-project/momonga/cmd/internal/cliutil"
	"github.com/momonga-project/momonga/project/bench"
)

func benchCheatCommand() *cli.Command {
	return &cli.Command{
		Name:  "cheat",
		Usage: "simulate hosts that return wrong results and count what validation lets through",
		Description: "Runs a batch through the scheduler state machine in this process, no NATS: simulated hosts, each\n" +
			"its own user, ask for one task at a time at random and report at once. Some return wrong results:\n" +
			"random ones of their own (\"wrong\"), the same wrong result as each other (\"colluding\"), or right ones\n" +
			"for their first " + fmt.Sprint(bench.SleeperHonest) + " tasks and then wrong ones (\"sleepers\", who earn adaptive replication's\n" +
			"trust first). Cheaters also claim 10 times their CPU time. Each scenario runs with fixed\n" +
			"replication and with adaptive replication.",
		Flags: []cli.Flag{
			&cli.IntFlag{Name: "units", Value: 10_000, Usage: "work units in the batch"},
			&cli.IntFlag{Name: "hosts", Value: 200, Usage: "simulated hosts"},
			&cli.IntFlag{Name: "replication", Value: 2, Usage: "replicas of each work unit"},
			&cli.IntFlag{Name: "quorum", Value: 2, Usage: "agreeing results that make a work unit valid"},
			&cli.IntFlag{Name: "trust-after", Value: 10, Usage: "adaptive replication: consecutive agreeing results before single replicas"},
			&cli.Float64Flag{Name: "spot-check", Value: 0.1, Usage: "adaptive replication: least share of a trusted host's units still replicated"},
			&cli.Uint64Flag{Name: "seed", Value: 1, Usage: "seed of the simulation's randomness"},
			&cli.BoolFlag{Name: "json", Usage: "print JSON"},
		},
		Action: benchCheat,
	}
}

func benchCheat(c *cli.Context) error {
	ctx, stop := cliutil.SignalContext(context.Background())
	defer stop()
	rows, err := bench.Cheat(ctx, bench.CheatConfig{
		Units: c.Int("units"), Hosts: c.Int("hosts"), Replication: c.Int("replication"), Quorum: c.Int("quorum"),
		TrustAfter: c.Int("trust-after"), SpotCheck: c.Float64("spot-check"), Seed: c.Uint64("seed"),
		Progress: func(r bench.CheatRow) {
			fmt.Fprintf(c.App.ErrWriter, "%s (adaptive %v): %d wrong results accepted, %.2f replicas per unit\n", r.Name, r.Adaptive, r.WrongAccepted, r.ReplicasPerWU)
		},
	})
	if err != nil {
		return err
	}
	return cliutil.Output(c, rows, func(w io.Writer, rows []bench.CheatRow) error { return printCheat(w, c, rows) })
}

func printCheat(out io.Writer, c *cli.Context, rows []bench.CheatRow) error {
	w := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintf(w, "cheating simulation: %d work units, %d hosts, replication %d, quorum %d; adaptive: trusted after %d agreeing results, spot checks ≥ %.0f%%\n",
		c.Int("units"), c.Int("hosts"), c.Int("replication"), c.Int("quorum"), c.Int("trust-after"), 100*c.Float64("spot-check"))
	fmt.Fprintf(w, "wrong accepted: valid units with a wrong canonical result; cheater credit: Cobblestones granted to cheating hosts (share of all)\n\n")
	fmt.Fprintln(w, "scenario\treplication\tcheaters\twrong returned\twrong accepted\terrors\treplicas/unit\tsingle units\tcheaters caught\tcheater credit\tshare\tentries/s")
	for _, r := range rows {
		mode := "fixed"
		if r.Adaptive {
			mode = "adaptive"
		}
		fmt.Fprintf(w, "%s\t%s\t%d\t%d\t%d\t%d\t%.3f\t%d\t%d/%d\t%.1f\t%.2f%%\t%.0f\n", r.Name, mode, r.CheatingHosts, r.WrongReturned, r.WrongAccepted,
			r.Errored, r.ReplicasPerWU, r.SingleUnits, r.CheaterCaught, r.CheatingHosts, r.CheaterCredit, 100*r.CreditShare, r.EntriesPerSec)
	}
	return w.Flush()
}
