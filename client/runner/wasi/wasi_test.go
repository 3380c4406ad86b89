package wasi

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"strings"
	"testing"

	experimentalsys "github.com/tetratelabs/wazero/experimental/sys"
	"github.com/tetratelabs/wazero/experimental/sysfs"
	"github.com/tetratelabs/wazero/sys"
)

// noLinks is a directory in which no link can be made, so that nothing a
// test calls can reach outside it (the runner gives modules such a file
// system, with more checks).
type noLinks struct{ experimentalsys.FS }

func (noLinks) Symlink(string, string) experimentalsys.Errno { return experimentalsys.EPERM }
func (noLinks) Link(string, string) experimentalsys.Errno    { return experimentalsys.EPERM }

func newSystem(t testing.TB, stdout io.Writer) *System {
	clock := int64(0)
	return New(Config{
		Args: []string{"app", "a b"}, Stdin: strings.NewReader("input"), Stdout: stdout, Stderr: io.Discard,
		FS:       noLinks{sysfs.DirFS(t.TempDir())},
		Walltime: func() (int64, int32) { clock += 1e6; return clock / 1e9, int32(clock % 1e9) },
		Nanotime: func() int64 { clock += 1e6; return clock }, Resolution: 1000,
		Random: bytes.NewReader(make([]byte, 1<<16)),
	})
}

func call(t testing.TB, s *System, name string, mem []byte, p ...uint64) uint32 {
	t.Helper()
	for _, f := range Functions() {
		if f.Name == name {
			return f.Call(s, mem, p)
		}
	}
	t.Fatalf("no function %s", name)
	return 0
}

// TestWriteOpenReadBack goes through the calls a C or Go program makes to
// write its output and a file in its directory, and read the file back.
func TestWriteOpenReadBack(t *testing.T) {
	var out bytes.Buffer
	s := newSystem(t, &out)
	defer s.Close()
	mem := make([]byte, 4096)
	copy(mem[100:], "hello\n")
	binary.LittleEndian.PutUint32(mem[200:], 100) // iovec: buf, len
	binary.LittleEndian.PutUint32(mem[204:], 6)
	if e := call(t, s, "fd_write", mem, fdStdout, 200, 1, 300); e != 0 || out.String() != "hello\n" || binary.LittleEndian.Uint32(mem[300:]) != 6 {
		t.Fatalf("fd_write: errno %d, wrote %q", e, out.String())
	}
	copy(mem[400:], "f.txt")
	if e := call(t, s, "path_open", mem, fdRoot, 0, 400, 5, oflagCreat, rightFdRead|rightFdWrite, 0, 0, 500); e != 0 {
		t.Fatalf("path_open: errno %d", e)
	}
	fd := uint64(binary.LittleEndian.Uint32(mem[500:]))
	if fd != fdRoot+1 {
		t.Errorf("first file opened as fd %d, want %d", fd, fdRoot+1)
	}
	if e := call(t, s, "fd_write", mem, fd, 200, 1, 300); e != 0 {
		t.Fatalf("fd_write to the file: errno %d", e)
	}
	if e := call(t, s, "fd_seek", mem, fd, 0, io.SeekStart, 600); e != 0 {
		t.Fatalf("fd_seek: errno %d", e)
	}
	binary.LittleEndian.PutUint32(mem[200:], 1000)
	binary.LittleEndian.PutUint32(mem[204:], 64)
	if e := call(t, s, "fd_read", mem, fd, 200, 1, 300); e != 0 || string(mem[1000:1006]) != "hello\n" || binary.LittleEndian.Uint32(mem[300:]) != 6 {
		t.Fatalf("fd_read: errno %d, read %q", e, mem[1000:1006])
	}
	if e := call(t, s, "fd_close", mem, fd); e != 0 {
		t.Fatalf("fd_close: errno %d", e)
	}
	if e := call(t, s, "fd_close", mem, fd); e != errnoBadf {
		t.Errorf("second fd_close: errno %d, want EBADF", e)
	}
	if e := call(t, s, "fd_write", mem, fdStdout, 4090, 1, 300); e != errnoFault {
		t.Errorf("iovec past the end of memory: errno %d, want EFAULT", e)
	}
}

func TestArgsAndExit(t *testing.T) {
	s := newSystem(t, io.Discard)
	mem := make([]byte, 256)
	if e := call(t, s, "args_sizes_get", mem, 0, 4); e != 0 || binary.LittleEndian.Uint32(mem[0:]) != 2 || binary.LittleEndian.Uint32(mem[4:]) != 8 {
		t.Fatalf("args_sizes_get: errno %d, %v", e, mem[:8])
	}
	if e := call(t, s, "args_get", mem, 16, 64); e != 0 || string(mem[64:72]) != "app\x00a b\x00" {
		t.Fatalf("args_get: errno %d, %q", e, mem[64:72])
	}
	defer func() {
		var exit *sys.ExitError
		if e, ok := recover().(error); !ok || !errors.As(e, &exit) || exit.ExitCode() != 7 {
			t.Errorf("proc_exit(7) panicked with %v, want a *sys.ExitError with code 7", e)
		}
	}()
	call(t, s, "proc_exit", mem, 7)
}

// FuzzFunctions calls every function with arbitrary memory and arguments: a
// call may fail with an errno, never panic (but proc_exit, which ends the
// module that way).
func FuzzFunctions(f *testing.F) {
	f.Add(uint8(31), []byte("iovec"), uint64(1), uint64(0), uint64(1), uint64(8), uint64(0))
	f.Add(uint8(32), []byte("../../etc/passwd"), uint64(3), uint64(0), uint64(0), uint64(16), uint64(0))
	f.Fuzz(func(t *testing.T, which uint8, data []byte, a, b, c, d, e uint64) {
		fns := Functions()
		fn := fns[int(which)%len(fns)]
		if fn.NoResult {
			return
		}
		s := newSystem(t, io.Discard)
		defer s.Close()
		mem := make([]byte, 1<<12)
		copy(mem, data)
		args := []uint64{a, b, c, d, e, a ^ b, c ^ d, 0, 0}
		p := make([]uint64, len(fn.Params))
		for i := range p {
			p[i] = args[i%len(args)]
			if fn.Params[i] == i32 {
				p[i] = uint64(uint32(p[i]))
			}
		}
		fn.Call(s, mem, p)
	})
}
