package chaos

import (
	"cmp"
	"encoding/binary"
	"math"
	"math/rand/v2"
	"slices"
	"time"
)

// Lifetime is how long the gen-th process at position lives before it is
// killed: exponentially distributed with the given half-life (rate
// ln 2 / halfLife), drawn from ChaCha8 keyed by seed, position and gen.
// It is a pure function, so a seed reproduces a run's kill schedule, and
// no position's draws depend on another's.
func Lifetime(seed uint64, halfLife time.Duration, position, gen int) time.Duration {
	var key [32]byte
	binary.LittleEndian.PutUint64(key[0:], seed)
	binary.LittleEndian.PutUint64(key[8:], uint64(position))
	binary.LittleEndian.PutUint64(key[16:], uint64(gen))
	copy(key[24:], "lifetime")
	x := rand.New(rand.NewChaCha8(key)).ExpFloat64() / math.Ln2 * float64(halfLife)
	return time.Duration(min(x, float64(math.MaxInt64/2)))
}

// Kill is one planned hard kill.
type Kill struct {
	At       time.Duration `json:"at_ns"` // since the run started
	Position int           `json:"position"`
	Gen      int           `json:"gen"` // 0 for the process a position starts with
	// Restart is when the position's next process is started: At plus the
	// replacement delay.
	Restart time.Duration `json:"restart_ns"`
}

// Plan is the kill schedule of a run of duration with members positions:
// the process at each position starts at 0 (the first) or at the previous
// one's Restart, lives Lifetime(seed, halfLife, position, gen) from its
// start, and is replaced after replace. A run follows the plan exactly
// unless a process dies by itself. Kills are in time order.
func Plan(seed uint64, members int, halfLife, replace, duration time.Duration) []Kill {
	var plan []Kill
	for p := range members {
		start := time.Duration(0)
		for gen := 0; ; gen++ {
			at := start + Lifetime(seed, halfLife, p, gen)
			if at >= duration {
				break
			}
			plan = append(plan, Kill{At: at, Position: p, Gen: gen, Restart: at + replace})
			start = at + replace
		}
	}
	slices.SortFunc(plan, func(a, b Kill) int {
		return cmp.Or(cmp.Compare(a.At, b.At), cmp.Compare(a.Position, b.Position))
	})
	return plan
}

// ExpectedKills is the mean number of kills of members processes over
// duration if every position always held a live process:
// members × duration × ln 2 / halfLife.
func ExpectedKills(members int, halfLife, duration time.Duration) float64 {
	return float64(members) * duration.Seconds() * math.Ln2 / halfLife.Seconds()
}

// ExpectedPlannedKills is the mean number of kills Plan makes: each
// position alternates a lifetime (mean halfLife / ln 2) and the replacement
// delay, so kills come at the rate 1 / (halfLife/ln 2 + replace) per
// position, in the long run.
func ExpectedPlannedKills(members int, halfLife, replace, duration time.Duration) float64 {
	return float64(members) * duration.Seconds() / (halfLife.Seconds()/math.Ln2 + replace.Seconds())
}
