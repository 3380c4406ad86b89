package reliability

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
)

// SearchLimit is the largest group a Report's smallest-group search tries:
// enough for any target a replacement time can reach in practice, and quick
// to compute.
const SearchLimit = 101

// ReportConfig is what a Report covers.
type ReportConfig struct {
	Members  []int         // group sizes, one row each
	HalfLife time.Duration // of a member
	Replace  time.Duration // mean time to replace a departed member
	Hours    float64       // the horizon R(t) is computed for
	Target   float64       // the R(t) the smallest group must reach
	// Trials is how many groups are simulated per row for R(t), and the
	// most failures simulated for the MTTF; 0 simulates nothing.
	Trials int
	// MTTFEvents stops simulating a row's MTTF after this many departures
	// and arrivals (0: no limit).
	MTTFEvents int64
	// Seed keys the simulations' random streams: each row draws its own
	// from it, so a row does not depend on the others.
	Seed uint64
}

// Report is what `momonga-project vpeer reliability` prints: for each group
// size, R(t) and the mean time to failure from the chain and, beside them,
// from simulation; and the smallest group that reaches the target.
type Report struct {
	HalfLifeHours        float64     `json:"half_life_hours"`
	DepartureRatePerHour float64     `json:"departure_rate_per_hour"`
	ReplaceSeconds       float64     `json:"replace_seconds"`
	Hours                float64     `json:"hours"`
	Trials               int         `json:"trials"`
	MTTFEvents           int64       `json:"mttf_events"`
	Seed                 uint64      `json:"seed"`
	Rows                 []ReportRow `json:"rows"`
	Target               float64     `json:"target"`
	// SmallestMembers is the smallest group reaching Target, 0 if none of
	// up to SearchLimit members does.
	SmallestMembers int     `json:"smallest_members"`
	SmallestR       float64 `json:"smallest_r,omitempty"`
	SearchLimit     int     `json:"search_limit"`
}

// ReportRow is one group size.
type ReportRow struct {
	Members       int               `json:"members"`
	Majority      int               `json:"majority"`
	R             float64           `json:"r"`
	MTTFHours     float64           `json:"mttf_hours"`
	SimulatedR    *SurvivalEstimate `json:"simulated_r,omitempty"`
	SimulatedMTTF *MTTFEstimate     `json:"simulated_mttf,omitempty"`
}

// NewReport computes a Report. The simulations run in parallel, one
// goroutine each.
func NewReport(cfg ReportConfig) (Report, error) {
	if !(cfg.Hours > 0) || cfg.Hours*float64(time.Hour) >= math.MaxInt64 {
		return Report{}, fmt.Errorf("%w: the horizon must be a positive number of hours below %.0f, got %g", ErrInvalid, float64(math.MaxInt64)/float64(time.Hour), cfg.Hours)
	}
	if cfg.Trials < 0 {
		return Report{}, fmt.Errorf("%w: trials must be 0 (no simulation) or more, got %d", ErrInvalid, cfg.Trials)
	}
	if len(cfg.Members) == 0 {
		return Report{}, fmt.Errorf("%w: no group size to report on", ErrInvalid)
	}
	rep := Report{
		HalfLifeHours:  cfg.HalfLife.Hours(),
		ReplaceSeconds: cfg.Replace.Seconds(),
		Hours:          cfg.Hours,
		Trials:         cfg.Trials,
		MTTFEvents:     cfg.MTTFEvents,
		Seed:           cfg.Seed,
		Target:         cfg.Target,
		SearchLimit:    SearchLimit,
	}
	horizon := time.Duration(cfg.Hours * float64(time.Hour))
	for _, n := range cfg.Members {
		m := Model{Members: n, HalfLife: cfg.HalfLife, Replace: cfg.Replace}
		r, err := m.Survival(horizon)
		if err != nil {
			return rep, fmt.Errorf("%d members: %w", n, err)
		}
		mttf, err := m.MTTFHours()
		if err != nil {
			return rep, fmt.Errorf("%d members: %w", n, err)
		}
		rep.DepartureRatePerHour = m.DepartureRate() // the same for every row
		rep.Rows = append(rep.Rows, ReportRow{Members: n, Majority: Quorum(n), R: r, MTTFHours: mttf})
	}
	n, r, err := SmallestGroup(cfg.HalfLife, cfg.Replace, horizon, cfg.Target, SearchLimit)
	switch {
	case errors.Is(err, ErrUnreachable):
	case err != nil:
		return rep, err
	default:
		rep.SmallestMembers, rep.SmallestR = n, r
	}
	if cfg.Trials > 0 {
		if err := simulateRows(rep.Rows, cfg, horizon); err != nil {
			return rep, err
		}
	}
	return rep, nil
}

// simulateRows fills in each row's simulated estimates, running every
// simulation in its own goroutine with its own random stream.
func simulateRows(rows []ReportRow, cfg ReportConfig, horizon time.Duration) error {
	var wg sync.WaitGroup
	errs := make([]error, 2*len(rows))
	for i := range rows {
		row := &rows[i]
		m := Model{Members: row.Members, HalfLife: cfg.HalfLife, Replace: cfg.Replace}
		wg.Go(func() {
			e, err := SimulateSurvival(m, horizon, cfg.Trials, simulationRand(cfg.Seed, row.Members, 0))
			row.SimulatedR, errs[2*i] = &e, err
		})
		wg.Go(func() {
			e, err := SimulateMTTF(m, cfg.Trials, cfg.MTTFEvents, simulationRand(cfg.Seed, row.Members, 1))
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

// Print writes the report as a table with its explanation.
func (rep Report) Print(out io.Writer) error {
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
func formatSurvival(s SurvivalEstimate) string {
	switch s.Survived {
	case 0:
		return fmt.Sprintf("0 (< %.2g)", 3/float64(s.Trials))
	case s.Trials:
		return fmt.Sprintf("1 (> %.6g)", 1-3/float64(s.Trials))
	}
	return withError(s.R, s.StdErr)
}

func formatMTTF(s MTTFEstimate) string {
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
