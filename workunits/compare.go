package workunits

import (
	"bytes"
	"math"
	"strconv"
)

// Tolerance is an app's fuzzy comparator: two outputs agree when they have
// the same tokens (separated by white space), tokens that are not numbers are
// equal, and numbers differ by no more than Abs + Rel·max(|a|, |b|). Apps
// whose floating-point results may differ in the last bits between CPUs or
// compilers declare one; the others are compared by the hash of their output.
type Tolerance struct {
	Abs float64 `json:"abs,omitempty"`
	Rel float64 `json:"rel,omitempty"`
}

// Fuzzy reports whether the tolerance allows any difference at all.
func (t Tolerance) Fuzzy() bool { return t.Abs > 0 || t.Rel > 0 }

func (t Tolerance) Validate() error {
	if !(t.Abs >= 0 && t.Rel >= 0 && t.Abs < math.Inf(1) && t.Rel <= 1) {
		return Errorf(CodeBadRequest, "tolerance abs %g, rel %g: abs must be finite and ≥ 0, rel within 0..1", t.Abs, t.Rel)
	}
	return nil
}

// MaxCompareBytes bounds the outputs a fuzzy comparison reads: larger
// outputs are compared by hash only.
const MaxCompareBytes = 16 << 20

// OutputsAgree compares two outputs under t. It is symmetric, and identical
// outputs always agree.
func OutputsAgree(a, b []byte, t Tolerance) bool {
	if bytes.Equal(a, b) {
		return true
	}
	if !t.Fuzzy() || len(a) > MaxCompareBytes || len(b) > MaxCompareBytes {
		return false
	}
	ta, tb := bytes.Fields(a), bytes.Fields(b)
	if len(ta) != len(tb) {
		return false
	}
	for i := range ta {
		if bytes.Equal(ta[i], tb[i]) {
			continue
		}
		x, errx := strconv.ParseFloat(string(ta[i]), 64)
		y, erry := strconv.ParseFloat(string(tb[i]), 64)
		if errx != nil || erry != nil || !numbersAgree(x, y, t) {
			return false
		}
	}
	return true
}

func numbersAgree(x, y float64, t Tolerance) bool {
	switch {
	case math.IsNaN(x) || math.IsNaN(y):
		return math.IsNaN(x) && math.IsNaN(y)
	case math.IsInf(x, 0) || math.IsInf(y, 0):
		return x == y
	}
	return math.Abs(x-y) <= t.Abs+t.Rel*max(math.Abs(x), math.Abs(y))
}
