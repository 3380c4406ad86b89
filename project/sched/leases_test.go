package sched

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"slices"
	"sort"
	"testing"
	"time"

	wu "github.com/momonga-project/momonga/workunits"
)

// TestLeasesFindWhatAScanFinds: through assignments, beats, reports,
// revocations and a restore, each tick loses exactly the assigned tasks a
// scan of all of them finds past their lease or deadline.
func TestLeasesFindWhatAScanFinds(t *testing.T) {
	h := newHarness(t)
	h.must(h.req("adm:test", wu.OpAddApp, wu.AddApp{V: 1, Name: "primes", Hash: wu.HashOf([]byte("app")), Size: 3}, nil))
	spec := wu.Submit{V: 1, Batch: "b1", App: "primes", Replication: 1, Quorum: 1, DeadlineSeconds: 90}
	for i := range 400 {
		spec.Units = append(spec.Units, wu.UnitSpec{Args: []string{"0", fmt.Sprint(i)}})
	}
	h.must(h.req("adm:test", wu.OpSubmit, spec, nil))
	hosts := []string{"a", "b", "c", "d", "e"}
	for _, host := range hosts {
		h.hello(host)
	}
	rng := rand.New(rand.NewPCG(1, 2))
	held := map[string][]string{}
	lostInAll := 0
	for step := range 120 {
		host := hosts[rng.IntN(len(hosts))]
		switch rng.IntN(4) {
		case 0:
			for _, a := range h.work(host, 1+rng.IntN(3)) {
				held[host] = append(held[host], a.Task)
			}
		case 1:
			if ts := held[host]; len(ts) > 0 {
				h.beat(host, ts[rng.IntN(len(ts))], 0.5)
			}
		case 2:
			if ts := held[host]; len(ts) > 0 {
				h.report(host, ts[0], "7")
				held[host] = ts[1:]
			}
		case 3:
			if step == 60 {
				h.apply(wu.Command{V: 1, Op: wu.OpHostRevoke, Host: "adm:test", Seq: 1000, Body: wu.Encode(wu.HostRevoke{V: 1, Host: "e"})})
				h.restore() // and the heap is rebuilt from the state
			}
		}
		// What a scan of every assigned task says the next tick loses.
		next := h.now.Add(time.Duration(1+rng.IntN(8)) * time.Second)
		var want []string
		for id := range h.m.st.Assigned {
			if task := h.m.st.Tasks[id]; next.After(task.LeaseUntil) || next.After(task.Deadline) {
				want = append(want, id)
			}
		}
		sort.Strings(want)
		h.tick(next.Sub(h.now))
		var got []string
		for _, id := range want {
			if h.m.st.Assigned[id] {
				continue
			}
			got = append(got, id)
		}
		if !slices.Equal(got, want) {
			t.Fatalf("step %d: the tick lost %v of %v", step, got, want)
		}
		lostInAll += len(got)
		for id := range h.m.st.Assigned {
			if task := h.m.st.Tasks[id]; h.now.After(task.LeaseUntil) || h.now.After(task.Deadline) {
				t.Fatalf("step %d: task %s is past its lease or deadline and still assigned", step, id)
			}
		}
	}
	if lostInAll < 10 {
		t.Fatalf("only %d tasks lost in the run: it tests too little", lostInAll)
	}
}

// restore replaces the harness's machine with one restored from its
// snapshot.
func (h *harness) restore() {
	h.t.Helper()
	m := New(h.m.cfg)
	if err := m.Restore(bytes.NewReader(h.snapshot())); err != nil {
		h.t.Fatal(err)
	}
	h.m = m
}
