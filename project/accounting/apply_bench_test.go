package accounting

import (
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/momonga-project/momonga/vpeer/fsm"
	wu "github.com/momonga-project/momonga/workunits"
)

// BenchmarkApplyDelivery applies deliveries of 1,000 grants, encoded as the
// log holds them, to a machine with 100,000 hosts, 10,000 users and 1,000
// teams already credited: the cost per grant of the totals, the history
// and the leaderboards.
func BenchmarkApplyDelivery(b *testing.B) {
	r := rand.New(rand.NewPCG(1, 1))
	grant := func(id uint64, at time.Time) Grant {
		h := r.IntN(100000)
		return Grant{ID: id, Task: "t", Host: fmt.Sprintf("h%d", h), User: fmt.Sprintf("u%d", h%10000), Team: fmt.Sprintf("t%d", h%1000),
			Credit: 1 + r.Float64()*50, Sent: at.Add(-time.Hour), At: at}
	}
	m := New()
	id := uint64(0)
	at := t0
	deliveries := func(n int) [][]byte {
		var out [][]byte
		for range n {
			d := Delivery{V: Version, Source: "sched"}
			for range 1000 {
				id++
				at = at.Add(time.Second)
				d.Grants = append(d.Grants, grant(id, at))
			}
			out = append(out, wu.Encode(d))
		}
		return out
	}
	for _, p := range deliveries(300) {
		m.Apply(fsm.Entry{Payload: p})
	}
	ds := deliveries(b.N)
	b.ResetTimer()
	for i := range b.N {
		m.Apply(fsm.Entry{Payload: ds[i]})
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*1000), "ns/grant")
}
