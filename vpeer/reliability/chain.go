package reliability

import (
	"fmt"
	"math"
	"time"
)

// generator returns the chain's generator restricted to the live states, in
// rates per hour: row and column i stand for n−i live members, i = 0 for all
// n. Row sums fall short of zero by the rate of failing from that state.
func (m Model) generator() [][]float64 {
	n, lambda, mu := m.Members, m.DepartureRate(), m.replaceRate()
	states := n - m.need() + 1
	q := make([][]float64, states)
	for i := range q {
		q[i] = make([]float64, states)
		live := n - i
		depart := float64(live) * lambda
		arrive := float64(n-live) * mu
		if i+1 < states {
			q[i][i+1] = depart
		}
		if i > 0 {
			q[i][i-1] = arrive
		}
		q[i][i] = -(depart + arrive)
	}
	return q
}

// Survival returns R(t), the probability that a group that starts with all
// members live has kept a majority (or the Need members) throughout the
// time t.
func (m Model) Survival(t time.Duration) (float64, error) {
	if err := m.Validate(); err != nil {
		return 0, err
	}
	if err := checkHorizon(t); err != nil {
		return 0, err
	}
	p := transient(m.generator(), t.Hours())
	r := 0.0
	for _, v := range p[0] {
		r += v
	}
	return min(r, 1), nil
}

// transient returns exp(q·t) for a generator q restricted to transient
// states. It halves t until the uniformization rate times the step is at
// most 1, sums the Poisson-weighted powers of the uniformized matrix for
// that step, and squares the result back up to t. Every number involved is
// non-negative, so no digits cancel.
func transient(q [][]float64, t float64) [][]float64 {
	s := len(q)
	rate := 0.0
	for i := range q {
		rate = max(rate, -q[i][i])
	}
	squarings := 0
	if x := rate * t; x > 1 {
		squarings = int(math.Ceil(math.Log2(x)))
	}
	a := rate * math.Ldexp(t, -squarings) // ≤ 1
	// u = I + q/rate is the uniformized chain's one-jump matrix.
	u := identity(s)
	if rate > 0 {
		for i := range u {
			for j := range u[i] {
				u[i][j] += q[i][j] / rate
			}
		}
	}
	// Each jump count k contributes e^−a a^k/k! u^k; with a ≤ 1 the weights
	// fall below 1e-20 within about twenty terms.
	weight := math.Exp(-a)
	power := identity(s)
	step := identity(s)
	scale(step, weight)
	for k := 1; weight > 1e-20 && k < 1000; k++ {
		power = mul(power, u)
		weight *= a / float64(k)
		for i := range step {
			for j := range step[i] {
				step[i][j] += weight * power[i][j]
			}
		}
	}
	for range squarings {
		step = mul(step, step)
	}
	return step
}

func identity(s int) [][]float64 {
	m := make([][]float64, s)
	for i := range m {
		m[i] = make([]float64, s)
		m[i][i] = 1
	}
	return m
}

func scale(m [][]float64, f float64) {
	for i := range m {
		for j := range m[i] {
			m[i][j] *= f
		}
	}
}

func mul(a, b [][]float64) [][]float64 {
	c := make([][]float64, len(a))
	for i := range a {
		c[i] = make([]float64, len(b[0]))
		for k, aik := range a[i] {
			if aik == 0 {
				continue
			}
			for j, bkj := range b[k] {
				c[i][j] += aik * bkj
			}
		}
	}
	return c
}

// MTTFHours returns the mean time to failure in hours of a group that starts
// with all members live.
//
// The expected times to absorption T solve −Q·T = 1. For this birth-death
// chain they reduce to the expected times d(k) to go from k live members
// to k−1: d(n) = 1/(nλ), and from k < n the group either loses a member or
// first gains one and must come back down, so
// d(k) = (1 + (n−k)μ·d(k+1)) / (kλ) with μ = 1/τ. The mean time to failure
// is d(n) + d(n−1) + … + d(q): a sum of positive terms, exact to rounding.
func (m Model) MTTFHours() (float64, error) {
	if err := m.Validate(); err != nil {
		return 0, err
	}
	n, lambda, mu := m.Members, m.DepartureRate(), m.replaceRate()
	total, down := 0.0, 0.0
	for k := n; k >= m.need(); k-- {
		down = (1 + float64(n-k)*mu*down) / (float64(k) * lambda)
		total += down
	}
	if math.IsInf(total, 0) {
		return 0, fmt.Errorf("%w: the mean time to failure of %d members with half-life %s and replacement %s is too long to represent (over %.2g hours)",
			ErrInvalid, n, m.HalfLife, m.Replace, math.MaxFloat64)
	}
	return total, nil
}
