// Command primes counts the prime numbers in a half-open range [a, b).
//
// It is momonga's smallest sample application: a WASI preview 1 command module
// (DESIGN.md §6) whose result is one line, so replicas of a work unit can be
// compared byte for byte. The range comes from the arguments (primes A B) or,
// when there are none, from two whitespace-separated integers on stdin. The
// count is written to stdout in decimal followed by a newline. Bad input is
// reported on stderr with exit status 2.
//
// The count uses a segmented sieve of Eratosthenes over odd numbers, so memory
// stays bounded (one segment plus the sieving primes up to √b) however wide
// the range is.
package main

import (
	"errors"
	"io"
	"os"
	"strconv"
	"strings"
)

// maxB bounds the end of the range so that the sieving primes (those up to
// √b, with their offsets) fit in about 8 MB.
const maxB = 100_000_000_000_000

// segmentLen is the most odd numbers sieved at a time, one byte each: a
// 512 KiB segment still fits a typical L2 cache, and is long enough that the
// large sieving primes of a range near 10^12 cost little per segment.
const segmentLen = 1 << 19

// maxInput bounds what is read from stdin: two integers need far less.
const maxInput = 4096

func main() {
	a, b, err := parseRange(os.Args[1:], os.Stdin)
	if err != nil {
		os.Stderr.WriteString("primes: " + err.Error() + "\nusage: primes A B (or A B on stdin) with 0 <= A <= B <= " +
			strconv.FormatUint(maxB, 10) + "\n")
		os.Exit(2)
	}
	out := strconv.AppendUint(nil, countPrimes(a, b), 10)
	if _, err := os.Stdout.Write(append(out, '\n')); err != nil {
		os.Stderr.WriteString("primes: write result: " + err.Error() + "\n")
		os.Exit(1)
	}
}

// parseRange reads the range from args, or from stdin when args is empty.
func parseRange(args []string, stdin io.Reader) (a, b uint64, err error) {
	if len(args) == 0 {
		in, err := io.ReadAll(io.LimitReader(stdin, maxInput+1))
		if err != nil {
			return 0, 0, errors.New("read stdin: " + err.Error())
		}
		if len(in) > maxInput {
			return 0, 0, errors.New("stdin is longer than " + strconv.Itoa(maxInput) + " bytes")
		}
		args = strings.Fields(string(in))
	}
	if len(args) != 2 {
		return 0, 0, errors.New("want two integers A and B, got " + strconv.Itoa(len(args)) + " values")
	}
	if a, err = parseBound(args[0]); err != nil {
		return 0, 0, err
	}
	if b, err = parseBound(args[1]); err != nil {
		return 0, 0, err
	}
	if a > b {
		return 0, 0, errors.New("A is greater than B")
	}
	return a, b, nil
}

func parseBound(s string) (uint64, error) {
	n, err := strconv.ParseUint(s, 10, 64)
	if err != nil || n > maxB {
		return 0, errors.New(strconv.Quote(s) + " is not an integer between 0 and " + strconv.FormatUint(maxB, 10))
	}
	return n, nil
}

// countPrimes returns the number of primes p with a <= p < b.
func countPrimes(a, b uint64) uint64 {
	var n uint64
	if a <= 2 && 2 < b {
		n++
	}
	lo := max(a, 3) | 1 // first odd candidate
	if lo >= b {
		return n
	}
	sieveOdd(lo, b, oddPrimesUpTo(isqrt(b-1)), func(seg []byte, _ uint64) {
		for _, composite := range seg {
			n += uint64(composite ^ 1)
		}
	})
	return n
}

// oddPrimesUpTo returns the odd primes p <= limit in increasing order. It
// sieves with the odd primes up to √limit, found the same way.
func oddPrimesUpTo(limit uint64) []uint32 {
	if limit < 3 {
		return nil
	}
	var ps []uint32
	sieveOdd(3, limit+1, oddPrimesUpTo(isqrt(limit)), func(seg []byte, first uint64) {
		for i, composite := range seg {
			if composite == 0 {
				ps = append(ps, uint32(first+2*uint64(i)))
			}
		}
	})
	return ps
}

// sieveOdd sieves the odd numbers in [lo, hi), lo odd and at least 3, one
// segment at a time, with base: the odd primes up to √(hi-1). For each segment
// it calls visit with one byte per odd number, first being the number of
// seg[0]; a byte is 0 for a prime and 1 for a composite.
func sieveOdd(lo, hi uint64, base []uint32, visit func(seg []byte, first uint64)) {
	// next[k] is the index, counted from the current segment's first number,
	// of the next odd multiple of base[k] to cross off. Crossing starts at p²:
	// smaller multiples have a smaller prime factor, and p itself stays prime.
	next := make([]uint64, len(base))
	for k, p := range base {
		p := uint64(p)
		m := max(p*p, (lo+p-1)/p*p)
		if m%2 == 0 {
			m += p
		}
		next[k] = (m - lo) / 2
	}
	seg := make([]byte, min(segmentLen, (hi-lo+1)/2))
	for first := lo; first < hi; first += 2 * uint64(len(seg)) {
		n := min(uint64(len(seg)), (hi-first+1)/2)
		s := seg[:n]
		clear(s)
		for k, p := range base {
			j := next[k]
			for ; j < n; j += uint64(p) {
				s[j] = 1
			}
			next[k] = j - n
		}
		visit(s, first)
	}
}

// isqrt returns ⌊√n⌋.
func isqrt(n uint64) uint64 {
	r := uint64(0)
	for bit := uint64(1) << 62; bit != 0; bit >>= 2 {
		if n >= r+bit {
			n -= r + bit
			r = r>>1 + bit
		} else {
			r >>= 1
		}
	}
	return r
}
