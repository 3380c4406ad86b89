package reliability

import (
	"errors"
	"math"
	"strings"
	"testing"
	"time"
)

const day = 24 * time.Hour

func model(n int, replace time.Duration) Model {
	return Model{Members: n, HalfLife: time.Hour, Replace: replace}
}

// The reference values in NOTES.md ("Virtual-peer reliability model"), each
// checked to half a unit in the last digit given there.
func TestReferenceValues(t *testing.T) {
	for _, c := range []struct {
		n       int
		replace time.Duration
		r24     float64 // R(24 h) as given
		rTol    float64
	}{
		{1, time.Minute, 6e-8, 0.5e-8},
		{3, time.Minute, 0.336, 0.0005},
		{5, time.Minute, 0.940, 0.0005},
		{7, time.Minute, 0.9967, 0.00005},
		{9, time.Minute, 0.99983, 0.000005},
		{7, 5 * time.Minute, 0.758, 0.0005},
	} {
		r, err := model(c.n, c.replace).Survival(day)
		if err != nil {
			t.Fatal(err)
		}
		if math.Abs(r-c.r24) > c.rTol {
			t.Errorf("n=%d replace=%s: R(24h) = %.8g, want %g ± %g", c.n, c.replace, r, c.r24, c.rTol)
		}
	}
	// The notes give the mean times to failure cut to whole hours (388.52
	// appears as 388), so they are checked to within one hour.
	for _, c := range []struct {
		n    int
		mttf float64 // hours, as given
		tol  float64
	}{
		{3, 22, 1},
		{5, 388, 1},
		{7, 7358, 1},
	} {
		h, err := model(c.n, time.Minute).MTTFHours()
		if err != nil {
			t.Fatal(err)
		}
		if math.Abs(h-c.mttf) > c.tol {
			t.Errorf("n=%d: MTTF = %.3f h, want %g ± %g h", c.n, h, c.mttf, c.tol)
		}
	}
}

func relErr(got, want float64) float64 { return math.Abs(got-want) / math.Abs(want) }

// With one or two members the first departure is fatal, and with three the
// two live states give a closed form.
func TestSurvivalClosedForms(t *testing.T) {
	lambda := math.Ln2 // per hour, half-life 1 h
	mu := 60.0         // per hour, replacement in 60 s
	// Three members: −Q = [[3λ, −3λ], [−μ, 2λ+μ]] has eigenvalues r1 < r2,
	// the roots of r² − (5λ+μ)r + 6λ², and R(t) = c1 e^{−r1 t} + c2 e^{−r2 t}
	// with R(0) = 1 and R'(0) = 0, as no member count fails from all live.
	three := func(h float64) float64 {
		tr := 5*lambda + mu
		det := 6 * lambda * lambda
		disc := math.Sqrt(tr*tr/4 - det)
		r1, r2 := tr/2-disc, tr/2+disc
		c1 := r2 / (r2 - r1)
		c2 := -r1 / (r2 - r1)
		return c1*math.Exp(-r1*h) + c2*math.Exp(-r2*h)
	}
	for _, h := range []float64{0, 0.01, 0.5, 1, 24, 24 * 7} {
		d := time.Duration(h * float64(time.Hour))
		for _, c := range []struct {
			n    int
			want float64
		}{
			{1, math.Exp(-lambda * h)},
			{2, math.Exp(-2 * lambda * h)},
			{3, three(h)},
		} {
			got, err := model(c.n, time.Minute).Survival(d)
			if err != nil {
				t.Fatal(err)
			}
			if relErr(got, c.want) > 1e-11 {
				t.Errorf("n=%d t=%gh: R = %.15g, want %.15g", c.n, h, got, c.want)
			}
		}
	}
	if got, _ := model(1, time.Minute).Survival(day); relErr(got, math.Ldexp(1, -24)) > 1e-12 {
		t.Errorf("one member: R(24h) = %.15g, want 2^-24", got)
	}
}

// Plain uniformization over the whole horizon, one vector at a time: a
// second, slower way to the same R(t).
func uniformized(m Model, hours float64) float64 {
	q := m.generator()
	rate := 0.0
	for i := range q {
		rate = max(rate, -q[i][i])
	}
	a := rate * hours
	// Poisson weights from exp(lgamma) carry relative errors of about
	// k·log(a)·ε, which would shift R by more than the difference being
	// tested; normalizing them to sum to one removes most of it.
	last := int(a + 12*math.Sqrt(a) + 50)
	weights := make([]float64, last+1)
	total := 0.0
	for k := range weights {
		lg, _ := math.Lgamma(float64(k + 1))
		weights[k] = math.Exp(-a + float64(k)*math.Log(a) - lg)
		total += weights[k]
	}
	p := make([]float64, len(q))
	p[0] = 1
	r := 0.0
	for _, w := range weights {
		for _, v := range p {
			r += w / total * v
		}
		next := make([]float64, len(p))
		for i := range p {
			for j := range p {
				u := q[i][j] / rate
				if i == j {
					u++
				}
				next[j] += p[i] * u
			}
		}
		p = next
	}
	return r
}

func TestSurvivalMatchesUniformization(t *testing.T) {
	for _, n := range []int{3, 4, 5, 7, 9, 11} {
		for _, replace := range []time.Duration{time.Minute, 5 * time.Minute} {
			for _, h := range []float64{0.1, 3, 24} {
				m := model(n, replace)
				got, err := m.Survival(time.Duration(h * float64(time.Hour)))
				if err != nil {
					t.Fatal(err)
				}
				want := uniformized(m, h)
				// Both methods round to about 1e-12; values as small as 1e-8
				// must keep many digits.
				if math.Abs(got-want) > 1e-11 && relErr(got, want) > 1e-9 {
					t.Errorf("n=%d replace=%s t=%gh: R = %.15g, uniformization gives %.15g", n, replace, h, got, want)
				}
			}
		}
	}
}

// Gaussian elimination on −Q·T = 1, the textbook system for expected
// absorption times.
func absorptionTimes(m Model) []float64 {
	q := m.generator()
	s := len(q)
	a := make([][]float64, s)
	b := make([]float64, s)
	for i := range q {
		a[i] = make([]float64, s)
		for j := range q[i] {
			a[i][j] = -q[i][j]
		}
		b[i] = 1
	}
	for c := range s {
		for r := c + 1; r < s; r++ {
			f := a[r][c] / a[c][c]
			for j := c; j < s; j++ {
				a[r][j] -= f * a[c][j]
			}
			b[r] -= f * b[c]
		}
	}
	x := make([]float64, s)
	for r := s - 1; r >= 0; r-- {
		v := b[r]
		for j := r + 1; j < s; j++ {
			v -= a[r][j] * x[j]
		}
		x[r] = v / a[r][r]
	}
	return x
}

// The linear system is solved without pivoting, which loses digits when
// replacements are much faster than departures and the group large; the
// cases here keep its answer good to about 1e-10.
func TestMTTFMatchesLinearSystem(t *testing.T) {
	for n := 1; n <= 10; n++ {
		for _, replace := range []time.Duration{time.Minute, 5 * time.Minute, time.Hour} {
			m := model(n, replace)
			got, err := m.MTTFHours()
			if err != nil {
				t.Fatal(err)
			}
			if want := absorptionTimes(m)[0]; relErr(got, want) > 1e-9 {
				t.Errorf("n=%d replace=%s: MTTF = %.12g h, linear system gives %.12g h", n, replace, got, want)
			}
		}
	}
}

// Closed forms from Cramer's rule, including a stiff case (replacement in
// one second, three thousand times faster than departures) where the
// linear system above would lose digits.
func TestMTTFClosedForms(t *testing.T) {
	lambda := math.Ln2
	for _, c := range []struct {
		n       int
		replace time.Duration
		want    float64
	}{
		{1, time.Minute, 1 / lambda},
		{2, time.Minute, 1 / (2 * lambda)},
		{3, time.Minute, (5*lambda + 60) / (6 * lambda * lambda)},
		{3, time.Second, (5*lambda + 3600) / (6 * lambda * lambda)},
	} {
		got, err := model(c.n, c.replace).MTTFHours()
		if err != nil {
			t.Fatal(err)
		}
		if relErr(got, c.want) > 1e-14 {
			t.Errorf("n=%d replace=%s: MTTF = %.17g h, want %.17g h", c.n, c.replace, got, c.want)
		}
	}
}

// The mean time to failure is the integral of R(t); Simpson's rule over R
// from Survival ties the two computations together.
func TestMTTFIsIntegralOfSurvival(t *testing.T) {
	for _, n := range []int{3, 5} {
		m := model(n, time.Minute)
		mttf, err := m.MTTFHours()
		if err != nil {
			t.Fatal(err)
		}
		end := 40 * mttf // R(end) ≈ e^−40
		const steps = 2000
		h := end / steps
		sum := 0.0
		for i := 0; i <= steps; i++ {
			r, err := m.Survival(time.Duration(float64(i) * h * float64(time.Hour)))
			if err != nil {
				t.Fatal(err)
			}
			w := 2.0
			switch {
			case i == 0 || i == steps:
				w = 1
			case i%2 == 1:
				w = 4
			}
			sum += w * r
		}
		if integral := sum * h / 3; relErr(integral, mttf) > 1e-4 {
			t.Errorf("n=%d: ∫R dt = %.6g h, MTTF = %.6g h", n, integral, mttf)
		}
	}
}

func TestSurvivalShape(t *testing.T) {
	for n := 1; n <= 12; n++ {
		m := model(n, time.Minute)
		prev := 1.0
		for _, d := range []time.Duration{0, time.Minute, time.Hour, day, 30 * day, 365 * day} {
			r, err := m.Survival(d)
			if err != nil {
				t.Fatal(err)
			}
			if d == 0 && r != 1 {
				t.Errorf("n=%d: R(0) = %g, want 1", n, r)
			}
			if r > prev || r < 0 {
				t.Errorf("n=%d: R(%s) = %g after %g: not a decreasing probability", n, d, r, prev)
			}
			prev = r
		}
	}
	// An even group is never more reliable than the odd group one smaller.
	for n := 2; n <= 12; n += 2 {
		even, _ := model(n, time.Minute).Survival(day)
		odd, _ := model(n-1, time.Minute).Survival(day)
		evenMTTF, _ := model(n, time.Minute).MTTFHours()
		oddMTTF, _ := model(n-1, time.Minute).MTTFHours()
		if even > odd || evenMTTF > oddMTTF {
			t.Errorf("n=%d: R(24h) %g, MTTF %g h; n=%d: R(24h) %g, MTTF %g h", n, even, evenMTTF, n-1, odd, oddMTTF)
		}
	}
}

// The largest group the package accepts still computes, quickly.
func TestLargestGroup(t *testing.T) {
	start := time.Now()
	r, err := model(MaxMembers, 5*time.Minute).Survival(365 * day)
	if err != nil {
		t.Fatal(err)
	}
	if !(r > 0.99 && r <= 1) {
		t.Errorf("%d members: R(1 year) = %g", MaxMembers, r)
	}
	if _, err := model(MaxMembers, time.Second).MTTFHours(); !errors.Is(err, ErrInvalid) {
		t.Errorf("%d members: MTTF error %v, want one saying it is too large to represent", MaxMembers, err)
	}
	t.Logf("%d members: R(1 year) = %.6g in %s", MaxMembers, r, time.Since(start))
}

func TestInvalidModels(t *testing.T) {
	for _, c := range []struct {
		m    Model
		want string
	}{
		{Model{Members: 0, HalfLife: time.Hour, Replace: time.Minute}, "members must be between 1 and"},
		{Model{Members: -3, HalfLife: time.Hour, Replace: time.Minute}, "members must be between 1 and"},
		{Model{Members: MaxMembers + 1, HalfLife: time.Hour, Replace: time.Minute}, "members must be between 1 and"},
		{Model{Members: 3, HalfLife: 0, Replace: time.Minute}, "half-life must be positive, got 0s"},
		{Model{Members: 3, HalfLife: -time.Hour, Replace: time.Minute}, "half-life must be positive"},
		{Model{Members: 3, HalfLife: time.Hour, Replace: 0}, "replacement time must be positive, got 0s"},
		{Model{Members: 3, HalfLife: time.Hour, Replace: -time.Second}, "replacement time must be positive"},
		{Model{Members: 3, HalfLife: time.Hour, Replace: time.Minute, Need: 4}, "live members needed must be between 1 and the 3 members"},
		{Model{Members: 3, HalfLife: time.Hour, Replace: time.Minute, Need: -1}, "live members needed must be between 1 and the 3 members"},
	} {
		_, errR := c.m.Survival(day)
		_, errM := c.m.MTTFHours()
		for _, err := range []error{c.m.Validate(), errR, errM} {
			if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), c.want) {
				t.Errorf("%+v: error %v, want one containing %q", c.m, err, c.want)
			}
		}
	}
	if _, err := model(3, time.Minute).Survival(-time.Hour); !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), "horizon must not be negative") {
		t.Errorf("negative horizon: error %v", err)
	}
}

// Need changes only the number of live members the group needs: the
// majority is the default, all n fail at the first departure, and fewer
// needed survive longer.
func TestNeed(t *testing.T) {
	const n = 5
	m := model(n, time.Minute)
	def, _ := m.Survival(day)
	m.Need = Quorum(n)
	if r, _ := m.Survival(day); r != def {
		t.Errorf("Need = majority: R(24h) = %g, want the default %g", r, def)
	}
	m.Need = n
	want := math.Exp(-n * m.DepartureRate() * 24)
	if r, _ := m.Survival(day); relErr(r, want) > 1e-9 {
		t.Errorf("Need = n: R(24h) = %g, want exp(-nλt) = %g", r, want)
	}
	if mttf, _ := m.MTTFHours(); relErr(mttf, 1/(n*m.DepartureRate())) > 1e-12 {
		t.Errorf("Need = n: MTTF %g h, want 1/(nλ)", mttf)
	}
	prev := 0.0
	for need := n; need >= 1; need-- {
		m.Need = need
		r, err := m.Survival(day)
		if err != nil {
			t.Fatal(err)
		}
		if r <= prev {
			t.Errorf("Need %d: R(24h) = %g, not above %g for Need %d", need, r, prev, need+1)
		}
		prev = r
	}
}
