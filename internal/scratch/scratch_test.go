package scratch

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestGivenFolderIsKept(t *testing.T) {
	given := t.TempDir()
	dir, remove, err := Dir(given, "x-")
	if err != nil || dir != given {
		t.Fatalf("Dir(%q): %q, %v", given, dir, err)
	}
	remove()
	if _, err := os.Stat(given); err != nil {
		t.Fatalf("the given folder is gone after remove: %v", err)
	}
}

func TestTemporaryFolderIsRemoved(t *testing.T) {
	dir, remove, err := Dir("", "momonga-scratch-test-")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(filepath.Base(dir), "momonga-scratch-test-") {
		t.Errorf("temporary folder %q is not named after its pattern", dir)
	}
	if err := os.WriteFile(filepath.Join(dir, "f"), []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	remove()
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Fatalf("temporary folder still there after remove: %v", err)
	}
}
