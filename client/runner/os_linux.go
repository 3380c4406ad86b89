package runner

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"strconv"
	"time"

	"golang.org/x/sys/unix"
)

// lowerPriority gives this process the lowest CPU and I/O priority there is,
// so that a task only ever uses what the volunteer leaves idle: nice 19,
// SCHED_IDLE, and the idle I/O class. On Linux all three are per thread, and
// a new thread inherits them from the thread that creates it, so every
// thread that exists is set, until a pass finds none that is new. It also
// turns off core dumps: a crashing worker has nothing worth a file on the
// volunteer's disk. The first error is returned after everything else has
// been tried, since each setting helps on its own.
func lowerPriority() error {
	var errs []error
	if err := unix.Setrlimit(unix.RLIMIT_CORE, &unix.Rlimit{}); err != nil {
		errs = append(errs, fmt.Errorf("disable core dumps: %w", err))
	}
	done := map[int]bool{}
	for {
		tids, err := threadIDs()
		if err != nil {
			return errors.Join(append(errs, err)...)
		}
		added := false
		for _, tid := range tids {
			if done[tid] {
				continue
			}
			done[tid], added = true, true
			if err := unix.Setpriority(unix.PRIO_PROCESS, tid, 19); err != nil {
				errs = append(errs, fmt.Errorf("nice thread %d: %w", tid, err))
			}
			if err := unix.SchedSetAttr(tid, &unix.SchedAttr{Policy: unix.SCHED_IDLE}, 0); err != nil {
				errs = append(errs, fmt.Errorf("SCHED_IDLE for thread %d: %w", tid, err))
			}
			const ioprioWhoProcess, ioprioClassIdle, ioprioClassShift = 1, 3, 13
			if _, _, e := unix.Syscall(unix.SYS_IOPRIO_SET, ioprioWhoProcess, uintptr(tid), ioprioClassIdle<<ioprioClassShift); e != 0 {
				errs = append(errs, fmt.Errorf("idle I/O class for thread %d: %w", tid, e))
			}
		}
		if !added {
			return errors.Join(errs...)
		}
	}
}

func threadIDs() ([]int, error) {
	entries, err := os.ReadDir("/proc/self/task")
	if err != nil {
		return nil, fmt.Errorf("list threads: %w", err)
	}
	tids := make([]int, 0, len(entries))
	for _, e := range entries {
		if tid, err := strconv.Atoi(e.Name()); err == nil {
			tids = append(tids, tid)
		}
	}
	return tids, nil
}

// clockTicks is USER_HZ, the unit of the times in /proc/<pid>/stat; the
// kernel fixes it at 100 on every architecture Go supports.
const clockTicks = 100

// processCPU reads the user+system CPU time of a running process.
func processCPU(pid int) (time.Duration, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	// The command name in parentheses may hold spaces; fields follow the
	// last ')': state is the first, utime the 12th and stime the 13th.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, fmt.Errorf("unexpected /proc/%d/stat", pid)
	}
	f := bytes.Fields(b[i+1:])
	if len(f) < 13 {
		return 0, fmt.Errorf("unexpected /proc/%d/stat", pid)
	}
	utime, err1 := strconv.ParseInt(string(f[11]), 10, 64)
	stime, err2 := strconv.ParseInt(string(f[12]), 10, 64)
	if err := errors.Join(err1, err2); err != nil {
		return 0, fmt.Errorf("unexpected /proc/%d/stat: %w", pid, err)
	}
	return time.Duration(utime+stime) * time.Second / clockTicks, nil
}
