// Package credit is how momonga counts what volunteers gave (DESIGN §9): in
// Cobblestones, BOINC's unit (1/200 of a day of a CPU doing 1 GFLOPS), with a
// total and a recent average that halves every week without new credit.
//
// It is pure arithmetic on values the scheduler passes in, time included, so
// the scheduler state machine can use it while it applies its log.
package credit

import (
	"math"
	"time"
)

// FLOPsPerCobblestone is the work one Cobblestone stands for: a day of a
// 1 GFLOPS CPU is 200 Cobblestones.
const FLOPsPerCobblestone = 1e9 * 86400 / 200

// HalfLife is how long recent average credit takes to halve with no new
// credit.
const HalfLife = 7 * 24 * time.Hour

// Claim is the credit a host claims for a task: its CPU time at the speed its
// benchmark measured.
func Claim(cpuSeconds, flops float64) float64 {
	if !(cpuSeconds > 0 && flops > 0) || math.IsInf(cpuSeconds, 0) || math.IsInf(flops, 0) {
		return 0
	}
	return cpuSeconds * flops / FLOPsPerCobblestone
}

// Cap is the most credit a work unit of fpops floating-point operations can
// earn one result.
func Cap(fpops float64) float64 { return fpops / FLOPsPerCobblestone }

// Grant is the credit each validated replica of a work unit earns: the
// lowest of their claims (a host that inflates its benchmark gains nothing
// while another, honest replica claims less), never more than limit. A unit
// validated from one result, as adaptive replication allows, has no other
// claim to check it against, which is why limit must come from the work's
// size.
func Grant(claims []float64, limit float64) float64 {
	if len(claims) == 0 {
		return 0
	}
	g := math.Inf(1)
	for _, c := range claims {
		g = min(g, c)
	}
	return max(0, min(g, limit))
}

// Average is a recent average credit (RAC), in Cobblestones per day, as it
// was at Time.
type Average struct {
	Avg  float64   `json:"avg,omitempty"`
	Time time.Time `json:"time,omitzero"`
}

// Add adds credit granted at now for work that started at start (when its
// task was sent). It is BOINC's update_average with one change: BOINC sets
// the first average to credit/(now-start), which for a task of seconds makes
// the first RAC thousands of times too large; here the first grant is
// averaged like every later one, as if the average had been zero at start.
func (a *Average) Add(now, start time.Time, credit float64) {
	from := a.Time
	if from.IsZero() {
		from = start
		a.Avg = 0
	}
	diff := now.Sub(from).Seconds()
	if diff < 0 {
		diff = 0
	}
	halfLife := HalfLife.Seconds()
	weight := math.Exp(-diff * math.Ln2 / halfLife)
	a.Avg *= weight
	if 1-weight > 1e-6 {
		a.Avg += (1 - weight) * credit / (diff / 86400)
	} else {
		// The limit as diff → 0 (BOINC's own first-order expansion): the
		// rate credit/diff and the weight 1-exp(..) cancel out.
		a.Avg += math.Ln2 * credit * 86400 / halfLife
	}
	if now.After(a.Time) {
		a.Time = now
	}
}

// At is the average decayed to now, as displays and exports show it.
func (a Average) At(now time.Time) float64 {
	if a.Time.IsZero() || !now.After(a.Time) {
		return a.Avg
	}
	return a.Avg * math.Exp(-now.Sub(a.Time).Seconds()*math.Ln2/HalfLife.Seconds())
}
