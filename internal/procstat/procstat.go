// Package procstat reads a process's line in Linux's /proc/PID/stat
// (proc(5)): its state and the CPU time it has used. The client measures
// its workers and other programs with it (client/runner, client/idle), and
// the volunteer binary's impact bench (client/impact) watches the client.
//
// The second field, the command name in parentheses, is whatever the process
// called itself: it may hold spaces and parentheses of its own, so the
// fields that follow are counted from the last ')'.
package procstat

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"time"
)

// ClockTicks is USER_HZ, the unit of the times in /proc/PID/stat; the kernel
// fixes it at 100 on every architecture Go supports.
const ClockTicks = 100

// Stat is one process's /proc/PID/stat.
type Stat struct {
	PID   int
	Comm  string // the command name, without its parentheses
	State byte   // R running, S sleeping, D disk wait, T stopped, Z zombie, ...
	PPID  int    // the parent's process id
	UTime uint64 // user CPU time, in clock ticks
	STime uint64 // system CPU time, in clock ticks

	rest [][]byte // the fields after the command name, from the state on
}

// Read reads the stat of process pid under root, "/proc" on a live system.
func Read(root string, pid int) (Stat, error) {
	p := filepath.Join(root, strconv.Itoa(pid), "stat")
	b, err := os.ReadFile(p)
	if err != nil {
		return Stat{}, err
	}
	s, err := Parse(b)
	if err != nil {
		return Stat{}, fmt.Errorf("%s: %w", p, err)
	}
	return s, nil
}

// minFields is how many fields a stat line needs: up to stime, the 15th.
const minFields = 15

// Parse parses the contents of a /proc/PID/stat file.
func Parse(b []byte) (Stat, error) {
	open := bytes.IndexByte(b, '(')
	end := bytes.LastIndexByte(b, ')')
	if open < 0 || end < open {
		return Stat{}, errors.New("no command name in parentheses")
	}
	pid, err := strconv.Atoi(string(bytes.TrimSpace(b[:open])))
	if err != nil || pid <= 0 {
		return Stat{}, fmt.Errorf("process id %q", bytes.TrimSpace(b[:open]))
	}
	s := Stat{PID: pid, Comm: string(b[open+1 : end]), rest: bytes.Fields(b[end+1:])}
	if len(s.rest) < minFields-2 {
		return Stat{}, fmt.Errorf("%d fields, want at least %d", len(s.rest)+2, minFields)
	}
	if len(s.rest[0]) != 1 {
		return Stat{}, fmt.Errorf("state %q", s.rest[0])
	}
	s.State = s.rest[0][0]
	ppid, err := s.uint(4)
	if err != nil {
		return Stat{}, err
	}
	s.PPID = int(ppid)
	if s.UTime, err = s.uint(14); err != nil {
		return Stat{}, err
	}
	if s.STime, err = s.uint(15); err != nil {
		return Stat{}, err
	}
	return s, nil
}

func (s Stat) uint(n int) (uint64, error) {
	f, _ := s.Field(n)
	// The kernel keeps these as signed longs: 63 bits.
	v, err := strconv.ParseUint(f, 10, 63)
	if err != nil {
		return 0, fmt.Errorf("field %d: %w", n, err)
	}
	return v, nil
}

// Field is field n as proc(5) numbers them (1 the process id, 2 the command
// name, 3 the state, 19 nice, 41 the scheduling policy, ...), as text; ok is
// false when the line has no such field.
func (s Stat) Field(n int) (f string, ok bool) {
	switch {
	case n == 1:
		return strconv.Itoa(s.PID), true
	case n == 2:
		return s.Comm, true
	case n >= 3 && n-3 < len(s.rest):
		return string(s.rest[n-3]), true
	}
	return "", false
}

// Ticks is the CPU time the process has used, user and system, in clock
// ticks.
func (s Stat) Ticks() uint64 { return s.UTime + s.STime }

// CPUTime is the CPU time the process has used, user and system.
func (s Stat) CPUTime() time.Duration {
	return time.Duration(s.Ticks()) * (time.Second / ClockTicks)
}

// State is the state letter of process pid on this system, 0 when it cannot
// be read (the process is gone, or this is not Linux).
func State(pid int) byte {
	s, err := Read("/proc", pid)
	if err != nil {
		return 0
	}
	return s.State
}

// AllStopped reports whether there are processes in pids and every one is
// stopped by a signal (SIGSTOP).
func AllStopped(pids []int) bool {
	for _, pid := range pids {
		if State(pid) != 'T' {
			return false
		}
	}
	return len(pids) > 0
}

// NoneStopped reports whether there are processes in pids and every one is
// there and not stopped.
func NoneStopped(pids []int) bool {
	for _, pid := range pids {
		if s := State(pid); s == 'T' || s == 0 {
			return false
		}
	}
	return len(pids) > 0
}
