package submitspec

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	wu "github.com/momonga-project/momonga/workunits"
)

func write(t *testing.T, dir, name, content string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// the command line as submit's flags default when nothing is given.
func defaults() Flags {
	return Flags{Deadline: Setting[time.Duration]{Value: 7 * 24 * time.Hour}}
}

func TestReadSpec(t *testing.T) {
	dir := t.TempDir()
	f, err := Read(write(t, dir, "spec.json", `{"app": "primes", "batch": "primes-1e9", "replication": 2, "quorum": 2,
		"deadline_seconds": 86400, "limits": {"memory_bytes": 67108864, "output_bytes": 1024, "max_seconds": 600},
		"units": [{"name": "r0", "args": ["0", "1000000"]}, {"name": "r1", "stdin_file": "ranges/r1.txt", "fpops": 1e12}]}`))
	if err != nil {
		t.Fatal(err)
	}
	if f.App != "primes" || f.Batch != "primes-1e9" || f.Replication != 2 || f.DeadlineSeconds != 86400 || f.Limits.MemoryBytes != 64<<20 || f.Limits.MaxSeconds != 600 {
		t.Errorf("spec %+v", f.Submit)
	}
	if len(f.Units) != 2 || f.Units[0].Args[1] != "1000000" || f.Units[1].StdinFile != "ranges/r1.txt" || f.Units[1].FPOps != 1e12 {
		t.Errorf("units %+v", f.Units)
	}
	bad := write(t, dir, "bad.json", `{"app": "primes", "units": {}}`)
	if _, err := Read(bad); err == nil || !strings.Contains(err.Error(), bad) {
		t.Errorf("a malformed spec: %v, want an error naming %s", err, bad)
	}
	if _, err := Read(filepath.Join(dir, "none.json")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a missing spec: %v", err)
	}
}

func TestMergeGivenFlagsWinDefaultsFillIn(t *testing.T) {
	spec := File{Submit: wu.Submit{App: "primes", Batch: "b1", Replication: 3, Quorum: 2, DeadlineSeconds: 3600, CheckpointSeconds: 30,
		Limits: wu.Limits{MemoryBytes: 1 << 20}}}
	now := time.Date(2025, 3, 4, 5, 6, 7, 0, time.FixedZone("x", 3600))

	// Nothing given: the spec stands.
	s, err := spec.Merge(defaults(), now)
	if err != nil {
		t.Fatal(err)
	}
	if s.App != "primes" || s.Batch != "b1" || s.Replication != 3 || s.Quorum != 2 || s.DeadlineSeconds != 3600 || s.CheckpointSeconds != 30 || s.Limits.MemoryBytes != 1<<20 {
		t.Errorf("spec alone: %+v", s)
	}

	// Given flags win, even a given zero.
	fl := defaults()
	fl.App = Setting[string]{"mandel", true}
	fl.Batch = Setting[string]{"b2", true}
	fl.Replication = Setting[int]{5, true}
	fl.Quorum = Setting[int]{0, true}
	fl.Deadline = Setting[time.Duration]{time.Minute, true}
	fl.Checkpoint = Setting[time.Duration]{10 * time.Second, true}
	if s, err = spec.Merge(fl, now); err != nil {
		t.Fatal(err)
	}
	if s.App != "mandel" || s.Batch != "b2" || s.Replication != 5 || s.Quorum != 0 || s.DeadlineSeconds != 60 || s.CheckpointSeconds != 10 {
		t.Errorf("given flags: %+v", s)
	}

	// No spec: the flags' defaults, and a batch named after the app and
	// the time in UTC.
	fl = defaults()
	fl.App = Setting[string]{"primes", true}
	if s, err = (File{}).Merge(fl, now); err != nil {
		t.Fatal(err)
	}
	if s.Batch != "primes-20250304-040607" || s.DeadlineSeconds != 7*24*3600 || s.Replication != 0 || s.CheckpointSeconds != 0 || s.Units != nil {
		t.Errorf("flags alone: %+v", s)
	}

	if _, err := (File{}).Merge(defaults(), now); err == nil || !strings.Contains(err.Error(), "--app") {
		t.Errorf("no app: %v", err)
	}

	// --no-share, or no_share in the spec, opts the batch out of shared
	// results.
	fl = defaults()
	fl.NoShare = Setting[bool]{true, true}
	if s, err = spec.Merge(fl, now); err != nil || !s.NoShare {
		t.Errorf("--no-share: %+v %v", s, err)
	}
	opted := spec
	opted.NoShare = true
	if s, err = opted.Merge(defaults(), now); err != nil || !s.NoShare {
		t.Errorf("no_share in the spec: %+v %v", s, err)
	}
}

// store is a blob store for WorkUnits' uploads.
type store map[wu.Hash][]byte

func (s store) put(b []byte) (wu.Hash, error) {
	h := wu.HashOf(b)
	s[h] = b
	return h, nil
}

func TestWorkUnits(t *testing.T) {
	dir := t.TempDir()
	r1 := write(t, dir, "r1.txt", "10 20\n")
	in := write(t, dir, "input one (b).txt", "30 40\n")
	spec := File{Units: []Unit{
		{UnitSpec: wu.UnitSpec{Name: "r0", Args: []string{"0", "10"}}},
		{UnitSpec: wu.UnitSpec{Name: "r1"}, StdinFile: r1},
	}}
	fl := defaults()
	fl.Args, fl.ArgsGiven = []string{"--fast"}, true
	fl.Inputs = []string{in}
	blobs := store{}
	units, err := spec.WorkUnits(fl, blobs.put)
	if err != nil {
		t.Fatal(err)
	}
	if len(units) != 3 {
		t.Fatalf("units %+v, want the spec's two and one input", units)
	}
	if u := units[0]; u.Name != "r0" || u.Stdin != "" || len(u.Args) != 2 {
		t.Errorf("spec unit with args: %+v", u)
	}
	if u := units[1]; u.Name != "r1" || string(blobs[u.Stdin]) != "10 20\n" {
		t.Errorf("spec unit with a stdin file: %+v", u)
	}
	if u := units[2]; u.Name != "input_one__b__txt" || string(blobs[u.Stdin]) != "30 40\n" || len(u.Args) != 1 || u.Args[0] != "--fast" {
		t.Errorf("input file unit: %+v", u)
	}
	if !wu.ValidName(units[2].Name) {
		t.Errorf("unit name %q is not valid", units[2].Name)
	}

	// The arguments alone make one unit; nothing at all is refused.
	fl.Inputs = nil
	if units, err := (File{}).WorkUnits(fl, blobs.put); err != nil || len(units) != 1 || units[0].Args[0] != "--fast" || units[0].Stdin != "" {
		t.Errorf("--arg alone: %+v, %v", units, err)
	}
	if _, err := (File{}).WorkUnits(defaults(), blobs.put); err == nil || !strings.Contains(err.Error(), "nothing to submit") {
		t.Errorf("nothing given: %v", err)
	}

	// A stdin file that cannot be read, or stored, stops the submission.
	missing := File{Units: []Unit{{StdinFile: filepath.Join(dir, "none.txt")}}}
	if _, err := missing.WorkUnits(defaults(), blobs.put); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a missing stdin file: %v", err)
	}
	full := errors.New("blob store full")
	if _, err := spec.WorkUnits(fl, func([]byte) (wu.Hash, error) { return "", full }); !errors.Is(err, full) {
		t.Errorf("a failed upload: %v", err)
	}
}
