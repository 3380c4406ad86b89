package procstat

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// line is a stat line as the kernel writes it (Linux 6, 52 fields).
func line(pid int, comm string, state byte, utime, stime uint64) string {
	return fmt.Sprintf("%d (%s) %c 1 %d %d 0 -1 4194560 1520 0 0 0 %d %d 0 0 39 19 3 0 12345 10461184 2304 "+
		"18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 0 17 1 0 5 0 0 0 0 0 0 0 0 0 0 0\n", pid, comm, state, pid, pid, utime, stime)
}

func TestParse(t *testing.T) {
	for _, comm := range []string{"momonga", "momonga worker", "a) S 1 2 (b", ")", "(", "", "x\ny"} {
		s, err := Parse([]byte(line(4242, comm, 'T', 250, 75)))
		if err != nil {
			t.Fatalf("comm %q: %v", comm, err)
		}
		if s.PID != 4242 || s.Comm != comm || s.State != 'T' || s.PPID != 1 || s.UTime != 250 || s.STime != 75 {
			t.Errorf("comm %q: parsed %+v", comm, s)
		}
		if s.Ticks() != 325 || s.CPUTime() != 3250*time.Millisecond {
			t.Errorf("comm %q: %d ticks, %v", comm, s.Ticks(), s.CPUTime())
		}
		if nice, _ := s.Field(19); nice != "19" {
			t.Errorf("nice %q, want 19", nice)
		}
		if policy, _ := s.Field(41); policy != "5" {
			t.Errorf("policy %q, want 5", policy)
		}
		if name, _ := s.Field(2); name != comm {
			t.Errorf("field 2 %q", name)
		}
		if _, ok := s.Field(53); ok {
			t.Error("a field 53 on a line of 52")
		}
	}
}

func TestParseRefusesMalformedLines(t *testing.T) {
	for _, bad := range []string{
		"",
		"4242 momonga S 1",
		"4242 (momonga S 1 2 3 4 5 6 7 8 9 10 11 12 13",
		"x (momonga) S 1 2 3 4 5 6 7 8 9 10 11 12 13",
		"0 (momonga) S 1 2 3 4 5 6 7 8 9 10 11 12 13",
		"4242 (momonga) S 1 2 3 4 5 6 7 8 9 10",
		"4242 (momonga) S 1 2 3 4 5 6 7 8 9 10 -11 12 13",
		"4242 (momonga) S 1 2 3 4 5 6 7 8 9 10 11 x 13",
		"4242 (momonga) SS 1 2 3 4 5 6 7 8 9 10 11 12 13",
		"4242 (momonga) S -1 2 3 4 5 6 7 8 9 10 11 12 13",
	} {
		if s, err := Parse([]byte(bad)); err == nil {
			t.Errorf("%q parsed as %+v", bad, s)
		}
	}
	// The shortest line that is enough: through stime.
	s, err := Parse([]byte("4242 (momonga) S 1 2 3 4 5 6 7 8 9 10 11 12"))
	if err != nil || s.UTime != 11 || s.STime != 12 {
		t.Errorf("shortest line: %+v, %v", s, err)
	}
}

func TestRead(t *testing.T) {
	root := t.TempDir()
	if err := os.MkdirAll(filepath.Join(root, "42"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, "42", "stat"), []byte(line(42, "w (1)", 'S', 3, 4)), 0o644); err != nil {
		t.Fatal(err)
	}
	if s, err := Read(root, 42); err != nil || s.Comm != "w (1)" || s.Ticks() != 7 {
		t.Errorf("read %+v, %v", s, err)
	}
	if _, err := Read(root, 43); !os.IsNotExist(err) {
		t.Errorf("a process that is not there: %v", err)
	}
	if err := os.WriteFile(filepath.Join(root, "42", "stat"), []byte("42 (w) S"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Read(root, 42); err == nil || !strings.Contains(err.Error(), filepath.Join(root, "42", "stat")) {
		t.Errorf("a short line: %v, want an error naming the file", err)
	}
}

// FuzzParse: a command name may be anything a process calls itself; the
// fields after it are still found, and no line makes Parse panic.
func FuzzParse(f *testing.F) {
	f.Add("momonga worker", uint64(1), uint64(2), []byte(line(1, "x", 'S', 1, 2)))
	f.Add(") R 1 2 (", uint64(0), uint64(1<<62), []byte("1 ()"))
	f.Fuzz(func(t *testing.T, comm string, utime, stime uint64, raw []byte) {
		utime, stime = utime>>1, stime>>1 // the kernel's counters are signed
		if !strings.ContainsRune(comm, 0) {
			s, err := Parse([]byte(line(7, comm, 'R', utime, stime)))
			if err != nil {
				t.Fatalf("comm %q: %v", comm, err)
			}
			if s.Comm != comm || s.State != 'R' || s.UTime != utime || s.STime != stime {
				t.Fatalf("comm %q: parsed %+v", comm, s)
			}
		}
		if s, err := Parse(raw); err == nil {
			for n := range 60 {
				s.Field(n)
			}
		}
	})
}
