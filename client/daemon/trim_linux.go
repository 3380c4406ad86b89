package daemon

import (
	"bufio"
	"os"
	"runtime/debug"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// trimResident gives back memory an idle client does not use: the heap the
// start-up left free, and the pages of its own executable that start-up
// read once (package initialisation, flag parsing, registration) and the
// idle loop never touches again. Those are clean pages of a file, so the
// kernel reads them back if they are ever needed; until then they no longer
// count against the volunteer's memory. The mappings are also marked for
// random access, so that a later fault brings in one page rather than the
// 64 KiB around it.
func trimResident() {
	debug.FreeOSMemory()
	exe, err := os.Executable()
	if err != nil {
		return
	}
	f, err := os.Open("/proc/self/maps")
	if err != nil {
		return
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		// start-end perms offset dev inode path
		if len(fields) < 6 || fields[5] != exe || strings.Contains(fields[1], "w") {
			continue
		}
		start, end, ok := strings.Cut(fields[0], "-")
		if !ok {
			continue
		}
		lo, err1 := strconv.ParseUint(start, 16, 64)
		hi, err2 := strconv.ParseUint(end, 16, 64)
		if err1 != nil || err2 != nil || hi <= lo {
			continue
		}
		madvise(lo, hi-lo, unix.MADV_RANDOM)
		madvise(lo, hi-lo, unix.MADV_PAGEOUT) // Linux 5.4 and later; older kernels keep the pages
	}
}

// madvise advises on a mapping given by address, which unix.Madvise (it
// takes a slice) cannot do for memory Go did not allocate.
func madvise(addr, length uint64, advice int) {
	_, _, _ = unix.Syscall(unix.SYS_MADVISE, uintptr(addr), uintptr(length), uintptr(advice))
}
