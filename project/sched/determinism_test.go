package sched

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/momonga-project/momonga/vpeer/fsm"
	wu "github.com/momonga-project/momonga/workunits"
)

// TestRestoredMembersDecideAlike drives a scheduler with a random mix of
// everything capability-aware scheduling turns on (hosts of many speeds,
// units of many sizes and deadlines, shared computations, inputs held,
// losses, cancels) and, at points along the way, restores a second machine
// from a snapshot of the first: fed the same entries from there, it gives
// the same replies and outputs and ends in the same state. What it derives
// from the state (histograms, the index of inputs, the leases) must be what
// the first built up entry by entry.
func TestRestoredMembersDecideAlike(t *testing.T) {
	for seed := range uint64(4) {
		t.Run(fmt.Sprint(seed), func(t *testing.T) { restoredDecideAlike(t, seed) })
	}
}

func restoredDecideAlike(t *testing.T, seed uint64) {
	rng := rand.New(rand.NewPCG(seed, 99))
	cfg := Config{Lease: 60 * time.Second}
	m := New(cfg)
	var followers []*Machine
	seq := uint64(0)
	now := t0
	apply := func(e fsm.Entry) []byte {
		seq++
		e.Seq = seq
		e.Time = now
		r := m.Apply(e)
		outs := fmt.Sprint(m.Outputs())
		for i, f := range followers {
			if fr := f.Apply(e); !bytes.Equal(r, fr) {
				t.Fatalf("entry %d: machine restored %d replied\n%s\nnot\n%s", seq, i, fr, r)
			}
			if fo := fmt.Sprint(f.Outputs()); fo != outs {
				t.Fatalf("entry %d: machine restored %d output %s, not %s", seq, i, fo, outs)
			}
		}
		return r
	}
	cmd := func(host string, hseq uint64, op string, body any) []byte {
		return apply(fsm.Entry{Payload: wu.Encode(wu.Command{V: 1, Op: op, Host: host, Seq: hseq, Body: wu.Encode(body)})})
	}
	apply(fsm.Entry{Tick: true})
	cmd("adm", 1, wu.OpAddApp, wu.AddApp{V: 1, Name: "app", Hash: wu.HashOf([]byte("app")), Size: 3})
	blobs := []wu.Hash{wu.HashOf([]byte("x")), wu.HashOf([]byte("y")), wu.HashOf([]byte("z")), ""}
	hosts := make([]string, 12)
	hseq := map[string]uint64{"adm": 1}
	held := map[string][]string{}
	for i := range hosts {
		hosts[i] = fmt.Sprintf("h%d", i)
		cmd(hosts[i], 0, wu.OpHello, wu.Hello{V: 1, Host: wu.HostInfo{Name: hosts[i], CPUs: 1 + rng.IntN(4), FLOPS: []float64{1e8, 1e9, 1e10, 1e11}[rng.IntN(4)]}})
	}
	batches := 0
	for step := range 1500 {
		host := hosts[rng.IntN(len(hosts))]
		switch r := rng.IntN(20); {
		case r == 0:
			batches++
			s := wu.Submit{V: 1, Batch: fmt.Sprintf("b%d", batches), App: "app", Replication: 1 + rng.IntN(2), DeadlineSeconds: float64(100 + rng.IntN(3000)), NoShare: rng.IntN(4) == 0}
			for range 1 + rng.IntN(20) {
				s.Units = append(s.Units, wu.UnitSpec{Args: []string{fmt.Sprint(rng.IntN(40))}, Stdin: blobs[rng.IntN(len(blobs))], FPOps: []float64{0, 1e9, 1e11, 1e12}[rng.IntN(4)]})
			}
			hseq["adm"]++
			cmd("adm", hseq["adm"], wu.OpSubmit, s)
		case r == 1 && batches > 0:
			hseq["adm"]++
			cmd("adm", hseq["adm"], wu.OpCancel, wu.Cancel{V: 1, Batch: fmt.Sprintf("b%d", 1+rng.IntN(batches))})
		case r < 8:
			hseq[host]++
			var cache []wu.Hash
			for _, b := range blobs[:3] {
				if rng.IntN(2) == 0 {
					cache = append(cache, b)
				}
			}
			var rep wu.WorkReply
			if err := json.Unmarshal(cmd(host, hseq[host], wu.OpWork, wu.WorkRequest{V: 1, Seq: hseq[host], Slots: 1 + rng.IntN(4), Cache: cache}), &rep); err != nil {
				t.Fatal(err)
			}
			for _, a := range rep.Assignments {
				held[host] = append(held[host], a.Task)
			}
		case r < 14 && len(held[host]) > 0:
			i := rng.IntN(len(held[host]))
			task := held[host][i]
			held[host] = append(held[host][:i], held[host][i+1:]...)
			hseq[host]++
			rep := wu.Report{V: 1, Seq: hseq[host], Task: task, Outcome: wu.OutcomeSuccess, Output: wu.HashOf([]byte(fmt.Sprint(rng.IntN(2)))), OutputSize: 1, CPUSeconds: float64(rng.IntN(100))}
			if rng.IntN(10) == 0 {
				rep = wu.Report{V: 1, Seq: hseq[host], Task: task, Outcome: wu.OutcomeFailure, Reason: "crash"}
			}
			cmd(host, hseq[host], wu.OpResult, rep)
		case r < 17 && len(held[host]) > 0:
			hseq[host]++
			var ps []wu.TaskProgress
			for _, task := range held[host] {
				ps = append(ps, wu.TaskProgress{Task: task, Fraction: 0.5})
			}
			cmd(host, hseq[host], wu.OpBeat, wu.Beat{V: 1, Seq: hseq[host], Tasks: ps})
		default:
			now = now.Add(time.Duration(1+rng.IntN(20)) * time.Second)
			apply(fsm.Entry{Tick: true})
		}
		if step%300 == 150 {
			var b bytes.Buffer
			if err := m.Snapshot(&b); err != nil {
				t.Fatal(err)
			}
			f := New(cfg)
			if err := f.Restore(&b); err != nil {
				t.Fatal(err)
			}
			followers = append(followers, f)
		}
	}
	var want bytes.Buffer
	if err := m.Snapshot(&want); err != nil {
		t.Fatal(err)
	}
	for i, f := range followers {
		var got bytes.Buffer
		if err := f.Snapshot(&got); err != nil || !bytes.Equal(got.Bytes(), want.Bytes()) {
			t.Fatalf("machine restored %d ends in another state (%v)", i, err)
		}
	}
	st := m.Status()
	valid, cancelled, shared := 0, 0, 0
	for _, b := range st.Batches {
		valid += b.Valid
		cancelled += b.Cancelled
	}
	for _, u := range m.st.Units {
		if u.SharedWith != "" {
			shared++
		}
	}
	if valid == 0 || cancelled == 0 || shared == 0 {
		t.Fatalf("the run tested too little: %d valid, %d cancelled, %d shared", valid, cancelled, shared)
	}
}
