package sdk

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

func TestCheckpointResumeProgress(t *testing.T) {
	t.Chdir(t.TempDir())
	if state, err := Resume(); err != nil || state != nil {
		t.Fatalf("resume with no checkpoint: %q %v", state, err)
	}
	if TimeToCheckpoint() {
		t.Fatal("a checkpoint is due before the runner asked")
	}
	if err := os.MkdirAll(Dir, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(DueFile, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if !TimeToCheckpoint() {
		t.Fatal("the runner's request is not seen")
	}
	if err := Checkpoint([]byte("i=42")); err != nil {
		t.Fatal(err)
	}
	if state, err := Resume(); err != nil || string(state) != "i=42" {
		t.Fatalf("resume: %q %v", state, err)
	}
	if _, err := os.Stat(StateTmpFile); !os.IsNotExist(err) {
		t.Errorf("the temporary state file is left: %v", err)
	}
	Progress(1.5)
	if b, _ := os.ReadFile(ProgressFile); string(b) != "1\n" {
		t.Errorf("progress file %q", b)
	}
}

// TestCHeaderCompiles builds a small C app against momonga.h for wasm32-wasi.
func TestCHeaderCompiles(t *testing.T) {
	clang, err := exec.LookPath("clang")
	if err != nil {
		t.Skip("clang is needed to compile momonga.h (Debian: clang lld wasi-libc)")
	}
	src := filepath.Join(t.TempDir(), "app.c")
	prog := `#include "momonga.h"
int main(void) {
	long i = 0;
	momonga_resume(&i, sizeof i);
	for (; i < 1000; i++) {
		if (momonga_time_to_checkpoint()) momonga_checkpoint(&i, sizeof i);
		momonga_progress(i / 1000.0);
	}
	return 0;
}
`
	if err := os.WriteFile(src, []byte(prog), 0o600); err != nil {
		t.Fatal(err)
	}
	wd, _ := os.Getwd()
	out, err := exec.Command(clang, "--target=wasm32-wasi", "--sysroot=/usr", "-O2", "-Wall", "-Werror", "-I", wd,
		"-o", filepath.Join(t.TempDir(), "app.wasm"), src).CombinedOutput()
	if err != nil {
		t.Fatalf("clang: %v\n%s", err, out)
	}
}
