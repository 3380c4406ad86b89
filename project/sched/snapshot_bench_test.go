package sched

import (
	"bytes"
	"fmt"
	"testing"
	"time"

	wu "github.com/momonga-project/momonga/workunits"
)

// loaded returns a harness whose scheduler holds units work units of
// replication 2 from 100 hosts: half of the tasks assigned, a quarter of
// those reported.
func loaded(tb testing.TB, units int) *harness {
	h := newHarness(tb)
	h.m = New(Config{Lease: 30 * time.Second, MaxTasksPerCore: -1})
	h.tick(0)
	h.must(h.req("adm:test", wu.OpAddApp, wu.AddApp{V: 1, Name: "primes", Hash: wu.HashOf([]byte("app")), Size: 3}, nil))
	for done := 0; done < units; {
		n := min(wu.MaxUnitsPerSubmit, units-done)
		spec := wu.Submit{V: 1, Batch: fmt.Sprintf("b%d", done/100_000), App: "primes", Replication: 2, Quorum: 2}
		for i := range n {
			spec.Units = append(spec.Units, wu.UnitSpec{Args: []string{"0", fmt.Sprint(done + i)}})
		}
		h.must(h.req("adm:test", wu.OpSubmit, spec, nil))
		done += n
	}
	hosts := 100
	for i := range hosts {
		h.hello(fmt.Sprintf("host%d", i))
	}
	for assigned, i := 0, 0; assigned < units; i++ {
		host := fmt.Sprintf("host%d", i%hosts)
		as := h.work(host, 100)
		for j, a := range as {
			if j%4 == 0 {
				h.must(h.report(host, a.Task, "42"))
			}
		}
		assigned += len(as)
	}
	h.tick(time.Second)
	return h
}

func benchmarkSnapshot(b *testing.B, units int) {
	h := loaded(b, units)
	var buf bytes.Buffer
	b.Run("Snapshot", func(b *testing.B) {
		for b.Loop() {
			buf.Reset()
			if err := h.m.Snapshot(&buf); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(buf.Len()), "bytes")
	})
	b.Run("Restore", func(b *testing.B) {
		for b.Loop() {
			if err := New(Config{}).Restore(bytes.NewReader(buf.Bytes())); err != nil {
				b.Fatal(err)
			}
		}
	})
}

func BenchmarkSnapshot1e5(b *testing.B) { benchmarkSnapshot(b, 100_000) }
func BenchmarkSnapshot1e6(b *testing.B) { benchmarkSnapshot(b, 1_000_000) }
