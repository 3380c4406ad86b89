//go:build linux

package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	wu "github.com/momonga-project/momonga/workunits"
)

// TestBatchEndToEnd is the whole life of a batch on a healthy project: three
// volunteers register, the primes app is published, 22 work units go in
// (twenty ranges as arguments, two on stdin: from a file the spec names and
// from an INPUT file), each is computed twice and validated by a quorum of
// two, and the results that come back are the counts a sieve in this test
// finds.
func TestBatchEndToEnd(t *testing.T) {
	p := newProject(t)
	for i := 1; i <= 3; i++ {
		p.startClient(fmt.Sprintf("vol%d", i))
	}
	p.waitStatus(30*time.Second, "three volunteers to register", func(st wu.StatusReply) bool { return len(st.Hosts) == 3 })

	module, err := os.ReadFile(primesWasm)
	if err != nil {
		t.Fatal(err)
	}
	if out := p.mustCLI("app add", "primes", primesWasm); !strings.Contains(out, string(wu.HashOf(module))) {
		t.Errorf("app add printed %q, without the module's hash %s", out, wu.HashOf(module))
	}

	const limit, ranges = 2_000_000, 20
	sieve := newPrimeSieve(limit)
	spec := batchSpec{App: "primes", Batch: "primes-e2e", Replication: 2, Quorum: 2}
	want := map[string]int{} // count of primes, by work unit name
	for i := range ranges {
		a, b := i*limit/ranges, (i+1)*limit/ranges
		name := fmt.Sprintf("range-%02d", i)
		spec.Units = append(spec.Units, unitSpec{Name: name, Args: []string{strconv.Itoa(a), strconv.Itoa(b)}})
		want[name] = sieve.count(a, b)
	}
	// Two units read their range from stdin: one names its file in the
	// spec, the other is an INPUT file on the command line.
	inSpec := filepath.Join(p.dir, "stdin-spec")
	if err := os.WriteFile(inSpec, []byte("1000 5000\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	spec.Units = append(spec.Units, unitSpec{Name: "stdin-spec", StdinFile: inSpec})
	want["stdin-spec"] = sieve.count(1000, 5000)
	input := filepath.Join(p.dir, "stdin-0-1000")
	if err := os.WriteFile(input, []byte("0 1000"), 0o644); err != nil {
		t.Fatal(err)
	}
	want["stdin-0-1000"] = sieve.count(0, 1000)
	units := len(want)
	out := p.mustCLI("submit", "--spec", p.writeSpec(spec), input)
	if wantOut := fmt.Sprintf("batch %s: %d work units submitted", spec.Batch, units); !strings.Contains(out, wantOut) {
		t.Errorf("submit printed %q, want %q", out, wantOut)
	}

	st := p.waitBatchDone(spec.Batch, 2*time.Minute)

	dir, manifest := p.results(spec.Batch)
	checkManifest(t, manifest, spec.Batch, units, 2)
	checkPrimeResults(t, dir, want)
	files, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(files) != units+1 {
		var names []string
		for _, f := range files {
			names = append(names, f.Name())
		}
		t.Errorf("results directory holds %v; want one file per work unit and manifest.json", names)
	}

	b, _ := batchStatus(st, spec.Batch)
	if b.Units != units || b.Valid != units || b.Errored != 0 || b.Pending != 0 {
		t.Errorf("batch status %+v; want all %d work units valid", b, units)
	}
	if n := b.Tasks[wu.TaskUnsent] + b.Tasks[wu.TaskAssigned]; n != 0 {
		t.Errorf("%d tasks still unsent or assigned in a finished batch: %v", n, b.Tasks)
	}
	if len(st.Apps) != 1 || st.Apps[0].Name != "primes" || st.Apps[0].Hash != wu.HashOf(module) || st.Apps[0].Size != int64(len(module)) {
		t.Errorf("apps %+v; want primes only, with the module's hash and size", st.Apps)
	}
	valid := 0
	for _, h := range st.Hosts {
		t.Logf("host %s (%s): valid %d, invalid %d, lost %d, credit %.6f", h.ID, h.Info.Name, h.Valid, h.Invalid, h.Lost, h.Credit)
		if h.Valid == 0 || h.Credit <= 0 {
			t.Errorf("host %s has %d valid results and %g credit; every volunteer should have earned some", h.Info.Name, h.Valid, h.Credit)
		}
		if h.Invalid != 0 {
			t.Errorf("host %s has %d invalid results on a healthy project", h.Info.Name, h.Invalid)
		}
		if h.Running != 0 {
			t.Errorf("host %s still runs %d tasks of a finished batch", h.Info.Name, h.Running)
		}
		valid += h.Valid
	}
	if valid != 2*units {
		t.Errorf("hosts hold %d valid results; want %d (%d work units × quorum 2)", valid, 2*units, units)
	}
}

// checkManifest checks a batch's manifest.json: every work unit is listed,
// valid, with a canonical output, after at least quorum tasks.
func checkManifest(t *testing.T, m wu.ResultsReply, batch string, units, quorum int) {
	t.Helper()
	if m.Batch != batch || m.Total != units || len(m.Units) != units {
		t.Errorf("manifest of batch %q lists %d of %d units; want batch %q with %d", m.Batch, len(m.Units), m.Total, batch, units)
	}
	seen := map[string]bool{}
	for _, u := range m.Units {
		if seen[u.Name] {
			t.Errorf("manifest lists work unit %s twice", u.Name)
		}
		seen[u.Name] = true
		if u.State != wu.WorkUnitValid || !u.Output.Valid() || u.Tasks < quorum {
			t.Errorf("manifest: work unit %s is %s with output %q after %d tasks; want valid with an output after at least %d",
				u.Name, u.State, u.Output, u.Tasks, quorum)
		}
	}
}

// checkPrimeResults checks that the results directory holds, for every work
// unit, the count of primes the test expects, as primes prints it.
func checkPrimeResults(t *testing.T, dir string, want map[string]int) {
	t.Helper()
	names := make([]string, 0, len(want))
	for name := range want {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		got, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Errorf("work unit %s: %v", name, err)
			continue
		}
		if w := strconv.Itoa(want[name]) + "\n"; string(got) != w {
			t.Errorf("work unit %s: result %q, want %q", name, got, w)
		}
	}
}
