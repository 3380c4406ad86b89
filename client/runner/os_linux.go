package runner

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"time"

	"golang.org/x/sys/unix"

	"github.com/momonga-project/momonga/internal/procstat"
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

// processCPU reads the user+system CPU time of a running process.
func processCPU(pid int) (time.Duration, error) {
	st, err := procstat.Read("/proc", pid)
	if err != nil {
		return 0, err
	}
	return st.CPUTime(), nil
}
