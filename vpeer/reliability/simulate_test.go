package reliability

import (
	"errors"
	"math"
	"math/rand/v2"
	"strings"
	"testing"
	"time"
)

func seeded(seed uint64) *rand.Rand {
	return rand.New(rand.NewChaCha8([32]byte{byte(seed), byte(seed >> 8), 'm', 'o', 'm', 'o', 'n', 'g', 'a'}))
}

// The simulation must agree with the chain within four standard errors of
// a binomial proportion with the chain's R; with fixed seeds the test is
// deterministic, and a correct simulation fails it for about one seed in
// 16,000 per case.
func TestSimulatedSurvivalAgreesWithChain(t *testing.T) {
	for _, c := range []struct {
		n       int
		replace time.Duration
		horizon time.Duration
		trials  int
		need    int
	}{
		{1, time.Minute, day, 20000, 0},
		{1, time.Minute, time.Hour, 20000, 0}, // R = 1/2 exactly
		{2, time.Minute, time.Hour, 20000, 0}, // R = 1/4
		{3, time.Minute, day, 20000, 0},
		{4, time.Minute, day, 20000, 0},
		{5, time.Minute, day, 20000, 0},
		{7, time.Minute, day, 20000, 0},
		{7, 5 * time.Minute, day, 20000, 0},
		{6, 5 * time.Minute, day, 20000, 0},
		{5, 20 * time.Minute, 6 * time.Hour, 20000, 0},
		{3, 20 * time.Minute, 6 * time.Hour, 20000, 1}, // until no member is live
	} {
		m := model(c.n, c.replace)
		m.Need = c.need
		want, err := m.Survival(c.horizon)
		if err != nil {
			t.Fatal(err)
		}
		got, err := SimulateSurvival(m, c.horizon, c.trials, seeded(uint64(c.n)))
		if err != nil {
			t.Fatal(err)
		}
		sigma := math.Sqrt(want * (1 - want) / float64(c.trials))
		if math.Abs(got.R-want) > 4*sigma+1e-12 {
			t.Errorf("n=%d need=%d replace=%s t=%s: simulated R = %.5f ± %.5f (%d/%d), chain gives %.5f (%.1fσ)",
				c.n, c.need, c.replace, c.horizon, got.R, got.StdErr, got.Survived, got.Trials, want, (got.R-want)/sigma)
		}
	}
}

// The mean time to failure from simulation agrees with the chain within
// four of its standard errors.
func TestSimulatedMTTFAgreesWithChain(t *testing.T) {
	for _, c := range []struct {
		n        int
		replace  time.Duration
		failures int
	}{
		{1, time.Minute, 4000},
		{2, time.Minute, 4000},
		{3, time.Minute, 4000},
		{4, time.Minute, 2000},
		{5, time.Minute, 400},
		{7, 5 * time.Minute, 400},
	} {
		m := model(c.n, c.replace)
		want, err := m.MTTFHours()
		if err != nil {
			t.Fatal(err)
		}
		got, err := SimulateMTTF(m, c.failures, 0, seeded(uint64(c.n)))
		if err != nil {
			t.Fatal(err)
		}
		if got.Failures != c.failures {
			t.Errorf("n=%d: %d failures simulated, want %d", c.n, got.Failures, c.failures)
		}
		if math.Abs(got.Hours-want) > 4*got.StdErr {
			t.Errorf("n=%d replace=%s: simulated MTTF = %.4g ± %.2g h (%d failures), chain gives %.4g h",
				c.n, c.replace, got.Hours, got.StdErr, got.Failures, want)
		}
		// The time to failure is close to exponential, so its standard
		// deviation is close to its mean.
		if rel := got.StdErr * math.Sqrt(float64(got.Failures)) / got.Hours; rel < 0.8 || rel > 1.2 {
			t.Errorf("n=%d: standard deviation of the time to failure is %.2f of its mean", c.n, rel)
		}
	}
}

// A budget too small for any failure leaves the estimate empty but says
// how much was simulated; the run it cut short counts.
func TestSimulatedMTTFBudget(t *testing.T) {
	e, err := SimulateMTTF(model(9, time.Minute), 10, 5000, seeded(1))
	if err != nil {
		t.Fatal(err)
	}
	if e.Failures != 0 || e.Hours != 0 || e.StdErr != 0 || e.Events != 5000 || e.SimulatedHours <= 0 {
		t.Errorf("budget of 5000 events with 9 members: %+v", e)
	}
	// Each member departs about λ·hours times, and each departure is
	// followed by its replacement's arrival.
	if perHour := float64(e.Events) / e.SimulatedHours; math.Abs(perHour-2*9*math.Ln2)/(2*9*math.Ln2) > 0.1 {
		t.Errorf("%.1f events per simulated hour, want about %.1f", perHour, 2*9*math.Ln2)
	}

	one, err := SimulateMTTF(model(3, time.Minute), 1, 0, seeded(1))
	if err != nil {
		t.Fatal(err)
	}
	if one.Failures != 1 || one.Hours != one.SimulatedHours || one.StdErr != 0 {
		t.Errorf("one failure: %+v", one)
	}
}

func TestSimulationIsDeterministic(t *testing.T) {
	m := model(5, time.Minute)
	a, _ := SimulateSurvival(m, day, 500, seeded(7))
	b, _ := SimulateSurvival(m, day, 500, seeded(7))
	c, _ := SimulateSurvival(m, day, 500, seeded(8))
	if a != b {
		t.Errorf("same seed, different results: %+v and %+v", a, b)
	}
	if a == c {
		t.Errorf("different seeds, same results: %+v", a)
	}
	x, _ := SimulateMTTF(m, 50, 0, seeded(7))
	y, _ := SimulateMTTF(m, 50, 0, seeded(7))
	if x != y {
		t.Errorf("same seed, different results: %+v and %+v", x, y)
	}
}

func TestSurvivalExtremes(t *testing.T) {
	none, _ := SimulateSurvival(model(1, time.Minute), day, 1000, seeded(1))
	if none.Survived != 0 || none.R != 0 || none.StdErr != 0 {
		t.Errorf("one member for a day: %+v", none)
	}
	all, _ := SimulateSurvival(model(9, time.Minute), time.Minute, 1000, seeded(1))
	if all.Survived != 1000 || all.R != 1 || all.StdErr != 0 {
		t.Errorf("nine members for a minute: %+v", all)
	}
	if zero, _ := SimulateSurvival(model(3, time.Minute), 0, 10, seeded(1)); zero.R != 1 {
		t.Errorf("horizon 0: %+v", zero)
	}
}

func TestSimulationInvalidInputs(t *testing.T) {
	for _, c := range []struct {
		name string
		err  error
		want string
	}{
		{"no trials", second(SimulateSurvival(model(3, time.Minute), day, 0, seeded(1))), "trials must be at least 1, got 0"},
		{"negative horizon", second(SimulateSurvival(model(3, time.Minute), -day, 10, seeded(1))), "horizon must not be negative"},
		{"bad model", second(SimulateSurvival(model(0, time.Minute), day, 10, seeded(1))), "members must be between 1 and"},
		{"no failures", second(SimulateMTTF(model(3, time.Minute), 0, 0, seeded(1))), "failures must be at least 1, got 0"},
		{"bad model for MTTF", second(SimulateMTTF(model(3, 0), 10, 0, seeded(1))), "replacement time must be positive"},
	} {
		if !errors.Is(c.err, ErrInvalid) || !strings.Contains(c.err.Error(), c.want) {
			t.Errorf("%s: error %v, want one containing %q", c.name, c.err, c.want)
		}
	}
}

func second[T any](_ T, err error) error { return err }
