package main

import (
	"math"
	"strings"
	"testing"
)

// TestInverse: the inverse times the matrix is the identity, to rounding,
// for orders that need row swaps and ones that do not.
func TestInverse(t *testing.T) {
	for _, n := range []int{1, 2, 3, 7, 50, 120} {
		for seed := range uint64(3) {
			a := generate(n, seed)
			inv := generate(n, seed)
			if err := invert(inv, n); err != nil {
				t.Fatal(err)
			}
			worst := 0.0
			for i := 0; i < n; i++ {
				for j := 0; j < n; j++ {
					s := 0.0
					for k := 0; k < n; k++ {
						s += a[i*n+k] * inv[k*n+j]
					}
					if i == j {
						s--
					}
					worst = max(worst, math.Abs(s))
				}
			}
			if worst > 1e-12 {
				t.Errorf("n %d seed %d: A·A⁻¹ is off the identity by %g", n, seed, worst)
			}
		}
	}
}

func TestPivotingSwapsRows(t *testing.T) {
	// A permutation matrix needs every row swapped: its inverse is its
	// transpose.
	a := []float64{0, 1, 0, 0, 0, 1, 1, 0, 0}
	if err := invert(a, 3); err != nil {
		t.Fatal(err)
	}
	want := []float64{0, 0, 1, 1, 0, 0, 0, 1, 0}
	for i := range want {
		if a[i] != want[i] {
			t.Fatalf("inverse %v, want %v", a, want)
		}
	}
	if err := invert([]float64{1, 2, 2, 4}, 2); err == nil {
		t.Fatal("a singular matrix was inverted")
	}
}

func TestArgsAndChecksum(t *testing.T) {
	for _, bad := range [][]string{nil, {"3"}, {"0", "1"}, {"4001", "1"}, {"x", "1"}, {"3", "-1"}, {"3", "1", "2"}} {
		if _, _, err := parseArgs(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
	a := generate(5, 9)
	if err := invert(a, 5); err != nil {
		t.Fatal(err)
	}
	line := checksum(a, 5, 9)
	if f := strings.Fields(line); len(f) != 5 || f[0] != "5" || f[1] != "9" || len(f[4]) != 64 {
		t.Fatalf("checksum line %q", line)
	}
	b := generate(5, 10)
	_ = invert(b, 5)
	if checksum(b, 5, 10) == line {
		t.Fatal("two seeds, one checksum")
	}
}
