package sched

import (
	"maps"
	"math"
	"math/rand/v2"
	"testing"
)

// TestRememberForgetsAsAWalkWould checks session.remember against walking
// the whole map after each request, as the scheduler did before, over
// requests that repeat, go back, jump ahead and wrap around.
func TestRememberForgetsAsAWalkWould(t *testing.T) {
	const window = 8
	rng := rand.New(rand.NewPCG(1, 2))
	for run := range 200 {
		got := &session{Replies: map[uint64][]byte{}}
		want := &session{Replies: map[uint64][]byte{}}
		seq := uint64(rng.IntN(3))
		if run%4 == 0 {
			seq = math.MaxUint64 - 20
		}
		for range 300 {
			switch r := rng.IntN(10); {
			case r < 6:
				seq++
			case r < 7:
				seq -= uint64(rng.IntN(window + 2))
			case r < 8:
				seq += uint64(rng.IntN(3 * window))
			case r < 9:
				seq = math.MaxUint64 - uint64(rng.IntN(2*window))
			default:
				seq = rng.Uint64()
			}
			if seq == 0 {
				continue
			}
			// What Apply does before it dispatches.
			if _, ok := want.Replies[seq]; ok {
				continue
			}
			if want.Last >= window && seq <= want.Last-window {
				continue
			}
			reply := []byte{byte(seq)}
			want.Replies[seq] = reply
			want.Last = max(want.Last, seq)
			for q := range want.Replies {
				if q+window <= want.Last {
					delete(want.Replies, q)
				}
			}
			got.remember(seq, reply, window)
			if got.Last != want.Last || !maps.EqualFunc(got.Replies, want.Replies, func(a, b []byte) bool { return string(a) == string(b) }) {
				t.Fatalf("run %d after %d: kept %v (last %d), want %v (last %d)", run, seq, keys(got.Replies), got.Last, keys(want.Replies), want.Last)
			}
		}
	}
}

func keys(m map[uint64][]byte) []uint64 {
	var ks []uint64
	for k := range m {
		ks = append(ks, k)
	}
	return ks
}
