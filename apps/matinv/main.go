// Command matinv inverts an n×n matrix and prints a checksum of the inverse.
//
// It is the workload of the study momonga grew from (a hybrid P2P system
// for idle resources, 2015), where the fast peer inverted the matrices and
// shared the results with the slow peers that needed the same ones:
// `momonga-project bench share` runs it. The matrix comes from a seed, so a
// work unit needs no input file and the same (n, seed) is the same
// computation on every host: matinv N SEED. Its entries are uniform in
// [-1, 1) from a SplitMix64 stream, with n added on the diagonal, which
// makes it strictly diagonally dominant and so invertible and well
// conditioned. It is inverted in place by Gauss-Jordan elimination with
// partial pivoting: n³ multiply-adds, in float64, whose results IEEE 754
// arithmetic fixes bit for bit on every CPU and engine (WebAssembly has no
// fused multiply-add to change them).
//
// The output is one line: n, the seed, the sum and the trace of the inverse
// (%.17g, exact), and the SHA-256 of all its entries' bits, so that replicas
// compare byte for byte. Bad arguments are reported on stderr with exit
// status 2.
package main

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"math"
	"os"
	"strconv"
)

// maxN bounds the order: two n² float64 arrays stay under 256 MiB, the
// default memory limit of a work unit.
const maxN = 4000

func main() {
	n, seed, err := parseArgs(os.Args[1:])
	if err != nil {
		os.Stderr.WriteString("matinv: " + err.Error() + "\nusage: matinv N SEED with 1 <= N <= " + strconv.Itoa(maxN) + "\n")
		os.Exit(2)
	}
	a := generate(n, seed)
	if err := invert(a, n); err != nil {
		os.Stderr.WriteString("matinv: " + err.Error() + "\n")
		os.Exit(1)
	}
	if _, err := os.Stdout.WriteString(checksum(a, n, seed) + "\n"); err != nil {
		os.Stderr.WriteString("matinv: write result: " + err.Error() + "\n")
		os.Exit(1)
	}
}

func parseArgs(args []string) (n int, seed uint64, err error) {
	if len(args) != 2 {
		return 0, 0, errors.New("two arguments are needed")
	}
	n, err = strconv.Atoi(args[0])
	if err != nil || n < 1 || n > maxN {
		return 0, 0, errors.New("N must be an integer from 1 to " + strconv.Itoa(maxN))
	}
	seed, err = strconv.ParseUint(args[1], 10, 64)
	if err != nil {
		return 0, 0, errors.New("SEED must be a non-negative integer")
	}
	return n, seed, nil
}

// generate makes the matrix of order n for seed, row by row.
func generate(n int, seed uint64) []float64 {
	a := make([]float64, n*n)
	s := seed
	for i := range a {
		s += 0x9e3779b97f4a7c15
		z := s
		z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9
		z = (z ^ (z >> 27)) * 0x94d049bb133111eb
		z ^= z >> 31
		a[i] = float64(z>>11)/(1<<52) - 1 // [-1, 1)
	}
	for i := 0; i < n; i++ {
		a[i*n+i] += float64(n)
	}
	return a
}

// invert replaces a (row-major, order n) by its inverse: Gauss-Jordan
// elimination in place, the pivot of each column the entry of largest
// magnitude at or below the diagonal, rows swapped back as columns at the
// end.
func invert(a []float64, n int) error {
	perm := make([]int, n) // perm[k]: the row swapped with row k
	for k := 0; k < n; k++ {
		p := k
		for i := k + 1; i < n; i++ {
			if math.Abs(a[i*n+k]) > math.Abs(a[p*n+k]) {
				p = i
			}
		}
		if a[p*n+k] == 0 {
			return errors.New("the matrix is singular")
		}
		perm[k] = p
		if p != k {
			rk, rp := a[k*n:(k+1)*n], a[p*n:(p+1)*n]
			for j := range rk {
				rk[j], rp[j] = rp[j], rk[j]
			}
		}
		rk := a[k*n : (k+1)*n]
		inv := 1 / rk[k]
		rk[k] = 1
		for j := range rk {
			rk[j] *= inv
		}
		for i := 0; i < n; i++ {
			if i == k {
				continue
			}
			ri := a[i*n : (i+1)*n]
			f := ri[k]
			if f == 0 {
				continue
			}
			ri[k] = 0
			for j := range ri {
				ri[j] -= f * rk[j]
			}
		}
	}
	for k := n - 1; k >= 0; k-- {
		if p := perm[k]; p != k {
			for i := 0; i < n; i++ {
				a[i*n+k], a[i*n+p] = a[i*n+p], a[i*n+k]
			}
		}
	}
	return nil
}

// checksum is the result line for inverse a.
func checksum(a []float64, n int, seed uint64) string {
	d := sha256.New()
	var buf [8]byte
	sum, trace := 0.0, 0.0
	for i, v := range a {
		sum += v
		if i/n == i%n {
			trace += v
		}
		binary.LittleEndian.PutUint64(buf[:], math.Float64bits(v))
		d.Write(buf[:])
	}
	return strconv.Itoa(n) + " " + strconv.FormatUint(seed, 10) + " " + strconv.FormatFloat(sum, 'g', 17, 64) + " " +
		strconv.FormatFloat(trace, 'g', 17, 64) + " " + hex.EncodeToString(d.Sum(nil))
}
