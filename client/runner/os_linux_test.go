package runner

import "golang.org/x/sys/unix"

// ioprioClass is the I/O scheduling class of a thread (3 is idle).
func ioprioClass(tid int) int {
	const ioprioWhoProcess, ioprioClassShift = 1, 13
	prio, _, e := unix.Syscall(unix.SYS_IOPRIO_GET, ioprioWhoProcess, uintptr(tid), 0)
	if e != 0 {
		return -1
	}
	return int(prio >> ioprioClassShift)
}
