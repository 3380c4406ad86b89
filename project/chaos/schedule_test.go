package chaos

import (
	"math"
	"slices"
	"sort"
	"testing"
	"time"
)

// Lifetimes are exponential with the half-life asked for: half of them
// below it, mean halfLife/ln 2, and the whole distribution within the
// Kolmogorov–Smirnov bound of the exponential.
func TestLifetimesAreExponential(t *testing.T) {
	const n = 20000
	halfLife := 30 * time.Second
	xs := make([]float64, 0, n)
	sum := 0.0
	for i := range n {
		x := Lifetime(7, halfLife, i%5, i/5).Seconds()
		if x < 0 {
			t.Fatalf("negative lifetime %g s", x)
		}
		xs = append(xs, x)
		sum += x
	}
	mean := halfLife.Seconds() / math.Ln2
	if got := sum / n; math.Abs(got-mean) > 4*mean/math.Sqrt(n) {
		t.Errorf("mean lifetime %.3f s, want %.3f s", got, mean)
	}
	sort.Float64s(xs)
	if med := xs[n/2]; math.Abs(med-halfLife.Seconds()) > 0.03*halfLife.Seconds() {
		t.Errorf("median lifetime %.3f s, want the half-life %s", med, halfLife)
	}
	d := 0.0
	for i, x := range xs {
		cdf := 1 - math.Exp(-x/mean)
		d = max(d, math.Abs(cdf-float64(i)/n), math.Abs(cdf-float64(i+1)/n))
	}
	if bound := 1.63 / math.Sqrt(n); d > bound { // 1 % significance
		t.Errorf("Kolmogorov–Smirnov distance %.4f from the exponential, over %.4f", d, bound)
	}
}

// A seed gives the same schedule every time; another seed, another one;
// one position's lifetimes do not move when the number of positions does.
func TestPlanIsSeeded(t *testing.T) {
	a := Plan(1, 5, 30*time.Second, 2*time.Second, 3*time.Minute)
	if b := Plan(1, 5, 30*time.Second, 2*time.Second, 3*time.Minute); !slices.Equal(a, b) {
		t.Fatal("the same seed gave two schedules")
	}
	if c := Plan(2, 5, 30*time.Second, 2*time.Second, 3*time.Minute); slices.Equal(a, c) {
		t.Fatal("seeds 1 and 2 gave the same schedule")
	}
	three := Plan(1, 3, 30*time.Second, 2*time.Second, 3*time.Minute)
	var firstThree []Kill
	for _, k := range a {
		if k.Position < 3 {
			firstThree = append(firstThree, k)
		}
	}
	if !slices.Equal(three, firstThree) {
		t.Fatal("positions 0-2 were killed differently with 5 positions than with 3")
	}
}

// The plan follows its rule: in time order, within the duration, each
// process killed Lifetime after it started, its successor started after
// the replacement delay; and over a long run the number of kills matches
// ExpectedPlannedKills.
func TestPlanFollowsLifetimes(t *testing.T) {
	const members = 5
	halfLife, replace, duration := 30*time.Second, 2*time.Second, 3*time.Minute
	plan := Plan(3, members, halfLife, replace, duration)
	if len(plan) == 0 {
		t.Fatal("no kills in 3 minutes with a 30 s half-life")
	}
	if !slices.IsSortedFunc(plan, func(a, b Kill) int { return int(a.At - b.At) }) {
		t.Fatal("kills out of time order")
	}
	start := map[int]time.Duration{}
	gen := map[int]int{}
	for _, k := range plan {
		if k.At >= duration {
			t.Fatalf("kill at %s, after the run's %s", k.At, duration)
		}
		if k.Gen != gen[k.Position] {
			t.Fatalf("position %d: kill of process %d, want %d", k.Position, k.Gen, gen[k.Position])
		}
		if want := start[k.Position] + Lifetime(3, halfLife, k.Position, k.Gen); k.At != want {
			t.Fatalf("position %d process %d killed at %s, want %s", k.Position, k.Gen, k.At, want)
		}
		if k.Restart != k.At+replace {
			t.Fatalf("restart at %s after a kill at %s, want %s later", k.Restart, k.At, replace)
		}
		start[k.Position], gen[k.Position] = k.Restart, k.Gen+1
	}

	long := 2000 * halfLife
	n := float64(len(Plan(4, members, halfLife, replace, long)))
	want := ExpectedPlannedKills(members, halfLife, replace, long)
	if math.Abs(n-want) > 4*math.Sqrt(want) {
		t.Errorf("%g kills over %s, want about %.0f", n, long, want)
	}
	if upper := ExpectedKills(members, halfLife, long); !(want < upper) {
		t.Errorf("with replacement delays, expected kills %.0f should be under %.0f", want, upper)
	}
}
