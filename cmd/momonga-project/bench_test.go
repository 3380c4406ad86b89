package main

import (
	"encoding/json"
	"strings"
	"testing"

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

	table := run()
	for _, want := range []string{"volunteers", "assignments/s", "raw publish/s", "ratio", "\nin-process  3 "} {
		if !strings.Contains(table, want) {
			t.Errorf("table lacks %q:\n%s", want, table)
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
