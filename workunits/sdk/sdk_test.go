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

func TestPicture(t *testing.T) {
	t.Chdir(t.TempDir())
	if err := Picture(3, 2, []byte{1, 2, 3, 4, 5, 6}); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(PictureFile); string(b) != "P5\n3 2\n255\n\x01\x02\x03\x04\x05\x06" {
		t.Errorf("grey picture file %q", b)
	}
	if err := Picture(1, 1, []byte{9, 8, 7}); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(PictureFile); string(b) != "P6\n1 1\n255\n\x09\x08\x07" {
		t.Errorf("colour picture file %q", b)
	}
	for _, bad := range []struct {
		w, h int
		n    int
	}{{3, 2, 5}, {0, 1, 0}, {MaxPictureSide + 1, 1, MaxPictureSide + 1}} {
		if err := Picture(bad.w, bad.h, make([]byte, bad.n)); err != ErrPictureSize {
			t.Errorf("%dx%d with %d bytes: %v", bad.w, bad.h, bad.n, err)
		}
	}
	if _, err := os.Stat(PictureTmpFile); !os.IsNotExist(err) {
		t.Errorf("the temporary picture is left: %v", err)
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
	unsigned char px[4 * 3 * 3] = {0};
	if (momonga_picture(4, 3, px, 3) != 0) return 1;
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
