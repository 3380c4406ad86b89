//go:build linux

package e2e

import (
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// TestBadInput feeds the project's tools what a scientist might get wrong,
// against a real server: each command must exit non-zero with one line that
// says what is wrong, and leave the project's apps and batches as they were.
func TestBadInput(t *testing.T) {
	p := newProject(t)
	p.mustCLI("app add", "primes", primesWasm)
	p.mustCLI("submit", "--app", "primes", "--batch", "base", "--arg", "0", "--arg", "100")
	before, err := p.status()
	if err != nil {
		t.Fatal(err)
	}

	module, err := os.ReadFile(primesWasm)
	if err != nil {
		t.Fatal(err)
	}
	file := func(name string, content []byte) string {
		path := filepath.Join(p.dir, name)
		if err := os.WriteFile(path, content, 0o644); err != nil {
			t.Fatal(err)
		}
		return path
	}
	spec := func(s batchSpec) string {
		b, err := json.Marshal(s)
		if err != nil {
			t.Fatal(err)
		}
		return file(s.Batch+".json", b)
	}
	notWasm := file("notes.txt", []byte("primes below ten: 2 3 5 7\n"))
	truncated := file("truncated.wasm", module[:len(module)/2])

	for _, tc := range []struct {
		name    string
		command string
		args    []string
		want    string // in the error message
	}{
		{"app that is not wasm", "app add", []string{"notes", notWasm}, "not a WebAssembly module"},
		{"truncated module", "app add", []string{"half", truncated}, "truncated.wasm: "},
		{"missing module file", "app add", []string{"ghost", filepath.Join(p.dir, "ghost.wasm")}, "no such file"},
		{"malformed app name", "app add", []string{"two words", primesWasm}, `app name "two words"`},
		{"unknown app", "submit", []string{"--app", "nope", "--arg", "0", "--arg", "10"}, `unknown app "nope"`},
		{"quorum above replication", "submit", []string{"--spec", spec(batchSpec{App: "primes", Batch: "q3", Replication: 2, Quorum: 3,
			Units: []unitSpec{{Name: "a", Args: []string{"0", "10"}}}})}, "quorum 3 is larger than replication 2"},
		{"work unit name taken", "submit", []string{"--spec", spec(batchSpec{App: "primes", Batch: "base",
			Units: []unitSpec{{Name: "000000", Args: []string{"0", "10"}}}})}, `already has a work unit named "000000"`},
		{"missing input file", "submit", []string{"--app", "primes", filepath.Join(p.dir, "ghost-input")}, "no such file"},
		{"unknown batch", "results", []string{"--out", filepath.Join(p.dir, "out"), "nope"}, `no batch named "nope"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, errOut, err := p.cli(tc.command, tc.args...)
			if err == nil {
				t.Fatalf("momonga-project %s %q succeeded:\n%s", tc.command, tc.args, out)
			}
			msg := strings.TrimSpace(errOut)
			t.Log(msg)
			if !strings.HasPrefix(msg, "momonga-project: ") || strings.Count(msg, "\n") != 0 || !strings.Contains(msg, tc.want) {
				t.Errorf("momonga-project %s %q: %v, stderr %q; want one line naming the command and saying %q", tc.command, tc.args, err, errOut, tc.want)
			}
		})
	}

	after, err := p.status()
	if err != nil {
		t.Fatalf("the server after bad input: %v", err)
	}
	if !reflect.DeepEqual(after.Apps, before.Apps) {
		t.Errorf("apps changed by bad input:\nbefore %+v\nafter  %+v", before.Apps, after.Apps)
	}
	if !reflect.DeepEqual(after.Batches, before.Batches) {
		t.Errorf("batches changed by bad input:\nbefore %+v\nafter  %+v", before.Batches, after.Batches)
	}
	if _, err := os.Stat(filepath.Join(p.dir, "out")); err == nil {
		t.Errorf("results of an unknown batch created its output directory")
	}
}
