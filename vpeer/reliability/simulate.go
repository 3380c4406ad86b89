package reliability

import (
	"fmt"
	"math"
	"math/rand/v2"
	"time"
)

// SurvivalEstimate is R(t) estimated from simulated groups.
type SurvivalEstimate struct {
	Trials   int     `json:"trials"`   // groups simulated up to the horizon
	Survived int     `json:"survived"` // groups that kept a majority throughout
	R        float64 `json:"r"`        // Survived / Trials
	// StdErr is the binomial standard error sqrt(R(1−R)/Trials). It is 0
	// when no group or every group survived; then the rule of three bounds
	// R, or 1−R, by 3/Trials with 95 % confidence.
	StdErr float64 `json:"stderr"`
}

// SimulateSurvival simulates trials groups of m from all members live up to
// the horizon t and counts those that kept a majority throughout.
func SimulateSurvival(m Model, t time.Duration, trials int, rng *rand.Rand) (SurvivalEstimate, error) {
	if err := m.Validate(); err != nil {
		return SurvivalEstimate{}, err
	}
	if err := checkHorizon(t); err != nil {
		return SurvivalEstimate{}, err
	}
	if trials < 1 {
		return SurvivalEstimate{}, fmt.Errorf("%w: trials must be at least 1, got %d", ErrInvalid, trials)
	}
	g := newGroup(m, rng)
	e := SurvivalEstimate{Trials: trials}
	for range trials {
		g.reset()
		if _, _, failed := g.run(t.Hours(), math.MaxInt64); !failed {
			e.Survived++
		}
	}
	e.R = float64(e.Survived) / float64(trials)
	e.StdErr = math.Sqrt(e.R * (1 - e.R) / float64(trials))
	return e, nil
}

// MTTFEstimate is the mean time to failure estimated from simulated groups.
type MTTFEstimate struct {
	Failures int   `json:"failures"` // groups simulated until they failed
	Events   int64 `json:"events"`   // departures and arrivals simulated in all
	// SimulatedHours is the time simulated in all, including the run cut
	// short by the event budget.
	SimulatedHours float64 `json:"simulated_hours"`
	// Hours is SimulatedHours / Failures, and 0 when no group failed: then
	// the mean time to failure is probably above SimulatedHours.
	Hours float64 `json:"hours"`
	// StdErr is the standard deviation of the completed runs' lengths over
	// √Failures, and 0 with fewer than two failures.
	StdErr float64 `json:"stderr"`
}

// SimulateMTTF simulates groups of m one after another, each from all
// members live until it fails, and stops after the given number of failures
// or once maxEvents departures and arrivals have been simulated, whichever
// comes first (maxEvents ≤ 0: no limit). A run the budget cuts short
// still counts its time: the groups form a renewal process, and the time
// simulated over the number of failures estimates the mean time to failure
// whichever way the run ends.
func SimulateMTTF(m Model, failures int, maxEvents int64, rng *rand.Rand) (MTTFEstimate, error) {
	if err := m.Validate(); err != nil {
		return MTTFEstimate{}, err
	}
	if failures < 1 {
		return MTTFEstimate{}, fmt.Errorf("%w: failures must be at least 1, got %d", ErrInvalid, failures)
	}
	if maxEvents <= 0 {
		maxEvents = math.MaxInt64
	}
	g := newGroup(m, rng)
	var e MTTFEstimate
	var sum, sumSq float64 // of completed runs' lengths
	for e.Failures < failures && e.Events < maxEvents {
		g.reset()
		end, events, failed := g.run(math.Inf(1), maxEvents-e.Events)
		e.Events += events
		e.SimulatedHours += end
		if failed {
			e.Failures++
			sum += end
			sumSq += end * end
		}
	}
	if e.Failures > 0 {
		e.Hours = e.SimulatedHours / float64(e.Failures)
	}
	if f := float64(e.Failures); e.Failures > 1 {
		variance := max(0, (sumSq-sum*sum/f)/(f-1))
		e.StdErr = math.Sqrt(variance / f)
	}
	return e, nil
}

// group is one simulated virtual peer. Each of its n slots holds a member or
// a replacement on its way, and the time of that slot's next event: the
// member's departure or the replacement's arrival.
type group struct {
	live     []bool
	next     []float64 // hours
	alive    int       // live slots
	lifetime float64   // mean member lifetime 1/λ, hours
	replace  float64   // mean replacement time, hours
	quorum   int
	rng      *rand.Rand
}

func newGroup(m Model, rng *rand.Rand) *group {
	return &group{
		live:     make([]bool, m.Members),
		next:     make([]float64, m.Members),
		lifetime: 1 / m.DepartureRate(),
		replace:  m.Replace.Hours(),
		quorum:   m.need(),
		rng:      rng,
	}
}

// reset fills every slot with a live member at time 0.
func (g *group) reset() {
	for i := range g.live {
		g.live[i] = true
		g.next[i] = g.rng.ExpFloat64() * g.lifetime
	}
	g.alive = len(g.live)
}

// run steps the group from event to event until it fails, the next event
// lies beyond until, or maxEvents events have happened. It returns the time
// it stopped at (the failure, until, or the last event) and whether the
// group failed.
func (g *group) run(until float64, maxEvents int64) (end float64, events int64, failed bool) {
	now := 0.0
	for ; events < maxEvents; events++ {
		slot := 0
		for i, t := range g.next {
			if t < g.next[slot] {
				slot = i
			}
		}
		now = g.next[slot]
		if now > until {
			return until, events, false
		}
		if g.live[slot] {
			g.alive--
			if g.alive < g.quorum {
				return now, events + 1, true
			}
			g.live[slot] = false
			g.next[slot] = now + g.rng.ExpFloat64()*g.replace
		} else {
			g.alive++
			g.live[slot] = true
			g.next[slot] = now + g.rng.ExpFloat64()*g.lifetime
		}
	}
	return now, events, false
}
