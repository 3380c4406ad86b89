package cliutil

import (
	"os"
	"path/filepath"
	"testing"
)

func TestCPUProfile(t *testing.T) {
	p := filepath.Join(t.TempDir(), "cpu.prof")
	stop, err := CPUProfile(p)
	if err != nil {
		t.Fatal(err)
	}
	stop()
	if fi, err := os.Stat(p); err != nil || fi.Size() == 0 {
		t.Fatalf("profile %v %v", fi, err)
	}
	none, err := CPUProfile("")
	if err != nil {
		t.Fatal(err)
	}
	none()
	if _, err := CPUProfile(filepath.Join(t.TempDir(), "no", "such", "dir", "p")); err == nil {
		t.Fatal("profile into a missing directory succeeded")
	}
}
