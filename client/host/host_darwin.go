package host

import (
	"context"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

func memory() (total, available int64) {
	t, err := unix.SysctlUint64("hw.memsize")
	if err != nil {
		return 0, 0
	}
	free, err1 := unix.SysctlUint32("vm.page_free_count")
	page, err2 := unix.SysctlUint32("hw.pagesize")
	if err1 == nil && err2 == nil {
		available = int64(free) * int64(page)
	}
	return int64(t), available
}

func cpuModel() string {
	s, _ := unix.Sysctl("machdep.cpu.brand_string")
	return strings.TrimSpace(s)
}

func osVersion() string {
	v, _ := unix.Sysctl("kern.osproductversion")
	return strings.TrimSpace("macOS " + v)
}

func disk(dir string) (total, free int64) {
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err != nil {
		return 0, 0
	}
	return int64(st.Blocks) * int64(st.Bsize), int64(st.Bavail) * int64(st.Bsize)
}

var battPercent = regexp.MustCompile(`(\d+)%`)

// power asks pmset, the system's own tool: reading IOKit's power sources
// directly needs cgo.
func power() Power {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, "pmset", "-g", "batt").Output()
	if err != nil {
		return Power{}
	}
	return parsePmset(string(out))
}

func parsePmset(out string) Power {
	var p Power
	p.HasBattery = strings.Contains(out, "InternalBattery")
	p.OnBattery = p.HasBattery && strings.Contains(out, "'Battery Power'")
	if m := battPercent.FindStringSubmatch(out); m != nil && p.HasBattery {
		p.BatteryPercent, _ = strconv.ParseFloat(m[1], 64)
	}
	return p
}
