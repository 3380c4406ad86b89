package main

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/momonga-project/momonga/cmd/internal/cliutil"
	"github.com/momonga-project/momonga/vpeer/reliability"
)

// reliabilitySearchLimit is the largest group the smallest-group search
// tries: enough for any target a replacement time can reach in practice,
// and quick to compute.
const reliabilitySearchLimit = 101

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

type reliabilityReport struct {
	HalfLifeHours        float64          `json:"half_life_hours"`
	DepartureRatePerHour float64          `json:"departure_rate_per_hour"`
	ReplaceSeconds       float64          `json:"replace_seconds"`
	Hours                float64          `json:"hours"`
	Trials               int              `json:"trials"`
	MTTFEvents           int64            `json:"mttf_events"`
	Seed                 uint64           `json:"seed"`
	Rows                 []reliabilityRow `json:"rows"`
	Target               float64          `json:"target"`
	// SmallestMembers is the smallest group reaching Target, 0 if none of
	// up to SearchLimit members does.
	SmallestMembers int     `json:"smallest_members"`
	SmallestR       float64 `json:"smallest_r,omitempty"`
	SearchLimit     int     `json:"search_limit"`
}

type reliabilityRow struct {
	Members       int                           `json:"members"`
	Majority      int                           `json:"majority"`
	R             float64                       `json:"r"`
	MTTFHours     float64                       `json:"mttf_hours"`
	SimulatedR    *reliability.SurvivalEstimate `json:"simulated_r,omitempty"`
	SimulatedMTTF *reliability.MTTFEstimate     `json:"simulated_mttf,omitempty"`
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
	rep := reliabilityReport{
		HalfLifeHours:  c.Duration("half-life").Hours(),
		ReplaceSeconds: c.Duration("replace").Seconds(),
		Hours:          hours,
		Trials:         trials,
		MTTFEvents:     c.Int64("mttf-events"),
		Seed:           c.Uint64("seed"),
		Target:         c.Float64("target"),
		SearchLimit:    reliabilitySearchLimit,
	}
	horizon := time.Duration(hours * float64(time.Hour))
	for _, n := range members {
		m := reliability.Model{Members: n, HalfLife: c.Duration("half-life"), Replace: c.Duration("replace")}
		r, err := m.Survival(horizon)
		if err != nil {
			return fmt.Errorf("%d members: %w", n, err)
		}
		mttf, err := m.MTTFHours()
		if err != nil {
			return fmt.Errorf("%d members: %w", n, err)
		}
		rep.DepartureRatePerHour = m.DepartureRate() // the same for every row
		rep.Rows = append(rep.Rows, reliabilityRow{Members: n, Majority: reliability.Quorum(n), R: r, MTTFHours: mttf})
	}
	n, r, err := reliability.SmallestGroup(c.Duration("half-life"), c.Duration("replace"), horizon, rep.Target, reliabilitySearchLimit)
	switch {
	case errors.Is(err, reliability.ErrUnreachable):
	case err != nil:
		return err
	default:
		rep.SmallestMembers, rep.SmallestR = n, r
	}
	if trials > 0 {
		if err := simulateRows(rep.Rows, c.Duration("half-life"), c.Duration("replace"), horizon, trials, rep.MTTFEvents, rep.Seed); err != nil {
			return err
		}
	}
	if c.Bool("json") {
		return cliutil.PrintJSON(c.App.Writer, rep)
	}
	return printReliability(c.App.Writer, rep)
}

// simulateRows fills in each row's simulated estimates, running every
// simulation in its own goroutine with its own random stream.
func simulateRows(rows []reliabilityRow, halfLife, replace, horizon time.Duration, trials int, mttfEvents int64, seed uint64) error {
	var wg sync.WaitGroup
	errs := make([]error, 2*len(rows))
	for i := range rows {
		row := &rows[i]
		m := reliability.Model{Members: row.Members, HalfLife: halfLife, Replace: replace}
		wg.Go(func() {
			e, err := reliability.SimulateSurvival(m, horizon, trials, simulationRand(seed, row.Members, 0))
			row.SimulatedR, errs[2*i] = &e, err
		})
		wg.Go(func() {
			e, err := reliability.SimulateMTTF(m, trials, mttfEvents, simulationRand(seed, row.Members, 1))
			row.SimulatedMTTF, errs[2*i+1] = &e, err
		})
	}
	wg.Wait()
	return errors.Join(errs...)
}

// simulationRand returns the random stream for one simulation: ChaCha8
// keyed by the seed, the member count and which estimate it is for, so
// every stream is independent of the others and of nearby seeds.
func simulationRand(seed uint64, members int, estimate byte) *rand.Rand {
	var key [32]byte
	binary.LittleEndian.PutUint64(key[0:], seed)
	binary.LittleEndian.PutUint64(key[8:], uint64(members))
	key[16] = estimate
	return rand.New(rand.NewChaCha8(key))
}

func printReliability(out io.Writer, rep reliabilityReport) error {
	horizon := fmt.Sprintf("R(%gh)", rep.Hours)
	fmt.Fprintf(out, "Each member departs with half-life %gh (λ = %.4g/h) and is replaced after %gs on average (one replacement\n",
		rep.HalfLifeHours, rep.DepartureRatePerHour, rep.ReplaceSeconds)
	fmt.Fprintf(out, "per missing member, in parallel). A group fails once fewer than a majority of its members are live.\n")
	fmt.Fprintf(out, "%s: probability that a group survives %g hours; MTTF: its mean time to failure; chain: exact, from the\n", horizon, rep.Hours)
	fmt.Fprintf(out, "continuous-time Markov chain.\n")
	if rep.Trials > 0 {
		fmt.Fprintf(out, "Simulated: %d groups per row for %s, and the MTTF from up to %d failures or %d events; seed %d.\n",
			rep.Trials, horizon, rep.Trials, rep.MTTFEvents, rep.Seed)
		fmt.Fprintf(out, "± one standard error; dev: (simulated − chain) / standard error.\n")
	}
	fmt.Fprintln(out)

	w := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	head := []string{"members", "majority", horizon + " chain", "MTTF chain"}
	if rep.Trials > 0 {
		head = []string{"members", "majority", horizon + " chain", horizon + " simulated", "dev", "MTTF chain", "MTTF simulated", "dev", "failures"}
	}
	fmt.Fprintln(w, strings.Join(head, "\t"))
	for _, row := range rep.Rows {
		cells := []string{fmt.Sprint(row.Members), fmt.Sprint(row.Majority), fmt.Sprintf("%.6g", row.R)}
		if s := row.SimulatedR; s != nil {
			cells = append(cells, formatSurvival(*s), deviation(s.R, row.R, math.Sqrt(row.R*(1-row.R)/float64(s.Trials))))
		}
		cells = append(cells, formatHours(row.MTTFHours))
		if s := row.SimulatedMTTF; s != nil {
			cells = append(cells, formatMTTF(*s), deviation(s.Hours, row.MTTFHours, s.StdErr), fmt.Sprint(s.Failures))
		}
		fmt.Fprintln(w, strings.Join(cells, "\t"))
	}
	if err := w.Flush(); err != nil {
		return err
	}
	fmt.Fprintln(out)
	if rep.SmallestMembers > 0 {
		_, err := fmt.Fprintf(out, "Smallest group with %s ≥ %g: %d members (%s = %.6g).\n",
			horizon, rep.Target, rep.SmallestMembers, horizon, rep.SmallestR)
		return err
	}
	_, err := fmt.Fprintf(out, "No group of up to %d members reaches %s ≥ %g: replace members faster.\n",
		rep.SearchLimit, horizon, rep.Target)
	return err
}

// withError prints a mean and its standard error, the error to two
// significant digits and the mean to the same decimal place.
func withError(mean, stdErr float64) string {
	decimals := max(0, 1-int(math.Floor(math.Log10(stdErr))))
	return fmt.Sprintf("%.*f ± %.*f", decimals, mean, decimals, stdErr)
}

// formatSurvival prints a simulated R(t); when no group or every group
// survived it gives the rule-of-three 95 % bound instead of an error.
func formatSurvival(s reliability.SurvivalEstimate) string {
	switch s.Survived {
	case 0:
		return fmt.Sprintf("0 (< %.2g)", 3/float64(s.Trials))
	case s.Trials:
		return fmt.Sprintf("1 (> %.6g)", 1-3/float64(s.Trials))
	}
	return withError(s.R, s.StdErr)
}

func formatMTTF(s reliability.MTTFEstimate) string {
	switch s.Failures {
	case 0:
		return "> " + formatHours(s.SimulatedHours)
	case 1:
		return formatHours(s.Hours)
	}
	return withError(s.Hours, s.StdErr) + " h"
}

func formatHours(h float64) string {
	switch {
	case h < 1000:
		return fmt.Sprintf("%.4g h", h)
	case h < 1e7:
		return fmt.Sprintf("%.0f h", h)
	}
	return fmt.Sprintf("%.3g h", h)
}

// deviation is (simulated − exact) / stdErr, or "-" when the simulation
// gives no error to compare with.
func deviation(simulated, exact, stdErr float64) string {
	if !(stdErr > 0) {
		return "-"
	}
	return fmt.Sprintf("%+.1f", (simulated-exact)/stdErr)
}
