package credit

import (
	"math"
	"testing"
	"time"
)

var t0 = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

func near(a, b, rel float64) bool { return math.Abs(a-b) <= rel*math.Max(math.Abs(a), math.Abs(b)) }

func TestClaimAndGrant(t *testing.T) {
	// A day of CPU at 1 GFLOPS is 200 Cobblestones.
	if c := Claim(86400, 1e9); !near(c, 200, 1e-12) {
		t.Fatalf("claim of a reference day = %g", c)
	}
	for _, bad := range [][2]float64{{-1, 1e9}, {1, -1}, {math.NaN(), 1}, {math.Inf(1), 1e9}} {
		if c := Claim(bad[0], bad[1]); c != 0 {
			t.Errorf("Claim(%g, %g) = %g, want 0", bad[0], bad[1], c)
		}
	}
	// The lowest claim wins, and the work's size caps a claim far above it.
	if g := Grant([]float64{3, 5}, 100); g != 3 {
		t.Fatalf("grant %g, want the lowest claim 3", g)
	}
	size := Cap(1e12) // a work unit of 10^12 operations
	if g := Grant([]float64{1e6}, size); g != size || size > 2.4 {
		t.Fatalf("claim of 10^6 Cobblestones on a unit worth %g: granted %g", size, g)
	}
	if Grant(nil, 10) != 0 {
		t.Fatal("grant without claims")
	}
}

func TestRecentAverageHalvesEveryWeek(t *testing.T) {
	var a Average
	// 100 Cobblestones a day, every day, for ten weeks: the average tends
	// to the rate.
	now := t0
	for day := 0; day < 70; day++ {
		a.Add(now.Add(24*time.Hour), now, 100)
		now = now.Add(24 * time.Hour)
	}
	if !near(a.At(now), 100, 0.05) {
		t.Fatalf("steady 100/day gives RAC %g", a.At(now))
	}
	// Then nothing: a week later it has halved, two weeks later quartered,
	// and the stored value has not moved.
	stored := a
	for weeks, want := range map[int]float64{1: 0.5, 2: 0.25, 4: 1.0 / 16} {
		got := a.At(now.Add(time.Duration(weeks) * HalfLife))
		if !near(got, a.Avg*want, 1e-9) {
			t.Errorf("%d weeks idle: %g, want %g", weeks, got, a.Avg*want)
		}
	}
	if a != stored {
		t.Fatal("At changed the average")
	}
	// A first grant is bounded however short the task was, and several
	// grants at the same instant add up.
	var b Average
	b.Add(t0, t0, 10)
	b.Add(t0, t0, 10)
	if want := 2 * math.Ln2 * 10 / 7; !near(b.Avg, want, 1e-9) {
		t.Fatalf("two grants at one instant: %g, want %g", b.Avg, want)
	}
	// Time going backwards (a clock from an older tick) is taken as no time.
	b.Add(t0.Add(-time.Hour), t0, 10)
	if b.Time != t0 || math.IsNaN(b.Avg) || math.IsInf(b.Avg, 0) {
		t.Fatalf("after an older time: %+v", b)
	}
}
