package main

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/momonga-project/momonga/cmd/internal/demo"
	"github.com/momonga-project/momonga/project/bench"
)

func TestBenchDispatch(t *testing.T) {
	run := func(extra ...string) string {
		t.Helper()
		var out, errOut strings.Builder
		a := app()
		a.Writer, a.ErrWriter = &out, &errOut
		args := append([]string{"momonga-project", "bench", "dispatch",
			"--duration", "60ms", "--volunteers", "1", "--volunteers", "3", "--transport", "in-process", "--tasks", "5000"}, extra...)
		if err := a.Run(args); err != nil {
			t.Fatalf("%v: %v\n%s", args, err, errOut.String())
		}
		if n := strings.Count(errOut.String(), "assignments/s"); n != 2 {
			t.Errorf("%d progress lines, want 2:\n%s", n, errOut.String())
		}
		return out.String()
	}

	var rep bench.Report
	if err := json.Unmarshal([]byte(run("--json")), &rep); err != nil {
		t.Fatal(err)
	}
	if len(rep.Rows) != 2 || rep.Rows[1].Volunteers != 3 || rep.Rows[1].Transport != bench.InProcess || rep.Rows[1].Dispatch.PerSecond <= 0 {
		t.Errorf("report %+v", rep)
	}

	table := run("--secure")
	for _, want := range []string{"volunteers", "assignments/s", "raw publish/s", "ratio", "\nin-process  3           1 ", "NATS secured"} {
		if !strings.Contains(table, want) {
			t.Errorf("table lacks %q:\n%s", want, table)
		}
	}
}

// TestBenchCheat runs the cheating simulation on a small batch and checks
// the acceptance figures: no wrong result accepted without collusion,
// adaptive replication issuing fewer replicas, no credit for random
// cheaters.
func TestBenchCheat(t *testing.T) {
	var out, errOut strings.Builder
	a := app()
	a.Writer, a.ErrWriter = &out, &errOut
	if err := a.Run([]string{"momonga-project", "bench", "cheat", "--units", "2000", "--hosts", "100", "--json"}); err != nil {
		t.Fatalf("%v\n%s", err, errOut.String())
	}
	var rows []bench.CheatRow
	if err := json.Unmarshal([]byte(out.String()), &rows); err != nil {
		t.Fatal(err)
	}
	if len(rows) != 10 {
		t.Fatalf("%d rows", len(rows))
	}
	replicas := map[bool]float64{}
	for _, r := range rows {
		t.Logf("%-24s adaptive=%-5v wrong accepted %d, errors %d, %.3f replicas/unit, cheater credit %.1f (%.2f%%)",
			r.Name, r.Adaptive, r.WrongAccepted, r.Errored, r.ReplicasPerWU, r.CheaterCredit, 100*r.CreditShare)
		if r.Cheaters[bench.Collude] == 0 && r.Cheaters[bench.Sleeper] == 0 && r.WrongAccepted != 0 {
			t.Errorf("%s: %d wrong results accepted without collusion", r.Name, r.WrongAccepted)
		}
		if r.Cheaters[bench.Random] > 0 && len(r.Cheaters) == 1 && r.CheaterCredit != 0 {
			t.Errorf("%s: hosts that only return wrong results got %g credit", r.Name, r.CheaterCredit)
		}
		if r.Name == "all honest" {
			replicas[r.Adaptive] = r.ReplicasPerWU
		}
	}
	if replicas[false] != 2 || replicas[true] >= replicas[false] {
		t.Errorf("replicas per unit: fixed %.3f, adaptive %.3f", replicas[false], replicas[true])
	}

	a = app()
	out.Reset()
	a.Writer, a.ErrWriter = &out, &errOut
	if err := a.Run([]string{"momonga-project", "bench", "cheat", "--units", "300", "--hosts", "40"}); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"wrong accepted", "replicas/unit", "5% wrong + 1% colluding", "adaptive"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("table lacks %q:\n%s", want, out.String())
		}
	}
}

func TestBenchCheckpoint(t *testing.T) {
	var out, errOut strings.Builder
	a := app()
	a.Writer, a.ErrWriter = &out, &errOut
	args := []string{"momonga-project", "bench", "checkpoint", "--memory", "8", "--runs", "1", "--apps", "primes"}
	if err := a.Run(args); err != nil {
		t.Fatalf("%v: %v\n%s", args, err, errOut.String())
	}
	for _, want := range []string{"delta/full", "\n8.0 ", "restore MB/s", "\nprimes "} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("table lacks %q:\n%s", want, out.String())
		}
	}
}

// TestBenchSharePrintsWhatLimitsIt: the table shows both runs and the
// speed-up, and says which volunteer bounded each run and by how much.
func TestBenchSharePrintsWhatLimitsIt(t *testing.T) {
	rep := demo.ShareReport{Step: 250, Count: 5, SlowLimit: 5, SpeedUp: 4, Runs: []demo.ShareRun{
		{Mode: "default", Seconds: 40, Computed: 15, ByVolunteer: map[string][]int{"fast": {1250}, "slow-1": {1000}, "slow-2": {750}},
			Busy: map[string]float64{"fast": 3, "slow-1": 36, "slow-2": 30}},
		{Mode: "proposed", Seconds: 10, Computed: 5, ByVolunteer: map[string][]int{"fast": {1250, 1000, 750}},
			Busy: map[string]float64{"fast": 8}},
	}}
	var out strings.Builder
	if err := printShare(&out, rep); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"speed-up: 4.00× (the study: 30162 ms → 3790 ms, 7.96×)",
		"default: slow-1 computed longest, 36.0 s of the 40.0 s; the other 4.0 s",
		"proposed: fast computed longest, 8.0 s of the 10.0 s; the other 2.0 s",
		"would take 8.0 s, a speed-up of 5.00× at most",
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("bench share's table lacks %q:\n%s", want, out.String())
		}
	}
}
