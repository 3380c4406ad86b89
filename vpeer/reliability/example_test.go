package reliability_test

import (
	"fmt"
	"time"

	"github.com/momonga-project/momonga/vpeer/reliability"
)

// The musasabi parameters: half of the members gone within an hour, 60 s to
// replace one.
func Example() {
	for _, n := range []int{1, 3, 5, 7, 9} {
		m := reliability.Model{Members: n, HalfLife: time.Hour, Replace: time.Minute}
		r, _ := m.Survival(24 * time.Hour)
		mttf, _ := m.MTTFHours()
		fmt.Printf("n=%d: R(24h) = %.6g, MTTF = %.1f h\n", n, r, mttf)
	}
	n, r, _ := reliability.SmallestGroup(time.Hour, time.Minute, 24*time.Hour, 0.99, 0)
	fmt.Printf("smallest group with R(24h) ≥ 0.99: %d members (%.4f)\n", n, r)
	// Output:
	// n=1: R(24h) = 5.96046e-08, MTTF = 1.4 h
	// n=3: R(24h) = 0.336155, MTTF = 22.0 h
	// n=5: R(24h) = 0.940152, MTTF = 388.5 h
	// n=7: R(24h) = 0.996748, MTTF = 7358.4 h
	// n=9: R(24h) = 0.999834, MTTF = 144680.0 h
	// smallest group with R(24h) ≥ 0.99: 7 members (0.9967)
}
