package atomicfile

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"
)

// TestFailedWriteLeavesTheOldFile fills the disk, as far as this process
// can tell: with a file size limit of 1 KiB (Go ignores SIGXFSZ, so the write
// fails with EFBIG), writing 4 KiB fails half way, and the old file stays
// whole, with no temporary file beside it.
func TestFailedWriteLeavesTheOldFile(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "state.json")
	old := []byte(`{"old": true}`)
	if err := Write(p, old, 0o600); err != nil {
		t.Fatal(err)
	}
	var limit unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_FSIZE, &limit); err != nil {
		t.Fatal(err)
	}
	low := limit
	low.Cur = 1 << 10
	if err := unix.Setrlimit(unix.RLIMIT_FSIZE, &low); err != nil {
		t.Skipf("cannot set a file size limit: %v", err)
	}
	err := Write(p, bytes.Repeat([]byte("n"), 4<<10), 0o600)
	if rerr := unix.Setrlimit(unix.RLIMIT_FSIZE, &limit); rerr != nil {
		t.Fatal(rerr)
	}
	if !errors.Is(err, syscall.EFBIG) {
		t.Fatalf("write over the file size limit: %v, want EFBIG", err)
	}
	if b, err := os.ReadFile(p); err != nil || !bytes.Equal(b, old) {
		t.Errorf("old file after the failed write: %q, %v", b, err)
	}
	if extra := leftovers(t, dir, "state.json"); len(extra) > 0 {
		t.Errorf("left behind: %v", extra)
	}
}
