package atomicfile

import (
	"bytes"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

// leftovers lists what is in dir besides the names given.
func leftovers(t *testing.T, dir string, want ...string) []string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var extra []string
	for _, e := range entries {
		if !strings.Contains(" "+strings.Join(want, " ")+" ", " "+e.Name()+" ") {
			extra = append(extra, e.Name())
		}
	}
	return extra
}

func TestWriteCreatesAndReplaces(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "state.json")
	if err := Write(p, []byte("first"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := Write(p, []byte("second, longer"), 0o640); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(p)
	if err != nil || string(b) != "second, longer" {
		t.Fatalf("read %q, %v", b, err)
	}
	if fi, _ := os.Stat(p); runtime.GOOS != "windows" && fi.Mode().Perm() != 0o640 {
		t.Errorf("mode %v, want 0640", fi.Mode().Perm())
	}
	if extra := leftovers(t, dir, "state.json"); len(extra) > 0 {
		t.Errorf("left behind: %v", extra)
	}
}

func TestFailedRenameLeavesTheOldContent(t *testing.T) {
	dir := t.TempDir()
	// A non-empty directory in the way: the rename is refused after the
	// temporary file was written.
	p := filepath.Join(dir, "busy")
	if err := os.MkdirAll(filepath.Join(p, "inside"), 0o700); err != nil {
		t.Fatal(err)
	}
	err := Write(p, []byte("new"), 0o600)
	if err == nil || !strings.Contains(err.Error(), p) {
		t.Fatalf("write over a directory: %v, want an error naming %s", err, p)
	}
	if _, err := os.Stat(filepath.Join(p, "inside")); err != nil {
		t.Errorf("what was there is gone: %v", err)
	}
	if extra := leftovers(t, dir, "busy"); len(extra) > 0 {
		t.Errorf("left behind: %v", extra)
	}
}

func TestWriteIntoAMissingDirectory(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "no", "such", "file")
	if err := Write(p, []byte("x"), 0o600); err == nil || !strings.Contains(err.Error(), p) {
		t.Fatalf("write into a missing directory: %v, want an error naming %s", err, p)
	}
	if extra := leftovers(t, dir); len(extra) > 0 {
		t.Errorf("created: %v", extra)
	}
}

func TestWriteEmpty(t *testing.T) {
	p := filepath.Join(t.TempDir(), "empty")
	if err := os.WriteFile(p, bytes.Repeat([]byte("x"), 100), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := Write(p, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(p); err != nil || fi.Size() != 0 {
		t.Errorf("after writing nothing: %v, %v", fi, err)
	}
}
