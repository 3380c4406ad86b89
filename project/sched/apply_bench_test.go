package sched

import (
	"strconv"
	"testing"
	"time"

	"github.com/momonga-project/momonga/vpeer/fsm"
	wu "github.com/momonga-project/momonga/workunits"
)

// BenchmarkApplyWork applies work requests of one slot from 1,000 hosts,
// as bench vpeer does: decoding the command and its body, assigning a task
// and encoding the reply. The payloads are encoded beforehand.
func BenchmarkApplyWork(b *testing.B) { benchmarkApplyWork(b, 1) }

// BenchmarkApplyWork8 is BenchmarkApplyWork with requests of 8 slots.
func BenchmarkApplyWork8(b *testing.B) { benchmarkApplyWork(b, 8) }

func benchmarkApplyWork(b *testing.B, slots int) {
	h := newHarness(b)
	// Each host asks again and again without reporting: none is bounded
	// by its cores, as in bench dispatch.
	h.m = New(Config{Lease: 30 * time.Second, MaxTasksPerCore: -1})
	h.tick(0)
	h.must(h.req("adm:test", wu.OpAddApp, wu.AddApp{V: 1, Name: "primes", Hash: wu.HashOf([]byte("app")), Size: 3}, nil))
	for done := 0; done < b.N*slots; {
		n := min(wu.MaxUnitsPerSubmit, b.N*slots-done)
		spec := wu.Submit{V: 1, Batch: "b" + strconv.Itoa(done/100_000), App: "primes", Replication: 1, Quorum: 1}
		for i := range n {
			spec.Units = append(spec.Units, wu.UnitSpec{Args: []string{strconv.Itoa(done + i)}})
		}
		h.must(h.req("adm:test", wu.OpSubmit, spec, nil))
		done += n
	}
	const hosts = 1000
	for i := range hosts {
		h.hello("h" + strconv.Itoa(i))
	}
	payloads := make([][]byte, b.N)
	for i := range payloads {
		host := "h" + strconv.Itoa(i%hosts)
		h.hs[host]++
		seq := h.hs[host]
		payloads[i] = wu.Encode(wu.Command{V: 1, Op: wu.OpWork, Host: host, Seq: seq, Body: wu.Encode(wu.WorkRequest{V: 1, Seq: seq, Slots: slots})})
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		h.seq++
		if len(h.m.Apply(fsm.Entry{Seq: h.seq, Time: h.now, Payload: payloads[i]})) < 100 {
			b.Fatal("no task assigned")
		}
	}
}
