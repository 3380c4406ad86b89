package idle

import (
	"bytes"
	"fmt"
	"os"
	"strconv"
	"time"

	"github.com/momonga-project/momonga/internal/procstat"
)

// procCPU measures other programs' CPU from /proc/stat minus the CPU time of
// our own processes, over windows of at least minWindow so that a reading
// is not noise.
type procCPU struct {
	root      string // "/proc"
	minWindow time.Duration

	at         time.Time
	busy, all  uint64
	ours       map[int]uint64 // per process, clock ticks
	lastShare  float64
	haveSample bool
}

func newProcCPU() *procCPU { return &procCPU{root: "/proc", minWindow: time.Second} }

func (c *procCPU) OtherCPU(now time.Time, ours []int) (float64, bool) {
	if c.haveSample && now.Sub(c.at) < c.minWindow {
		return c.lastShare, true
	}
	busy, all, err := readProcStat(c.root)
	if err != nil {
		return 0, false
	}
	oursNow := make(map[int]uint64, len(ours))
	var delta uint64
	for _, pid := range ours {
		t, err := processTicks(c.root, pid)
		if err != nil {
			continue
		}
		oursNow[pid] = t
		if prev, ok := c.ours[pid]; ok && t >= prev {
			delta += t - prev
		} else if c.haveSample {
			delta += t // started during the window
		}
	}
	first := !c.haveSample
	share := 0.0
	if !first && all > c.all {
		other := float64(busy-c.busy) - float64(delta)
		share = min(max(other/float64(all-c.all), 0), 1)
	}
	c.at, c.busy, c.all, c.ours, c.haveSample = now, busy, all, oursNow, true
	if first {
		return 0, false
	}
	c.lastShare = share
	return share, true
}

// readProcStat reads the machine's busy and total clock ticks from the
// first line of /proc/stat: user nice system idle iowait irq softirq steal
// (guest time is already inside user).
func readProcStat(root string) (busy, all uint64, err error) {
	f, err := os.Open(root + "/stat")
	if err != nil {
		return 0, 0, err
	}
	defer f.Close()
	var buf [512]byte
	n, _ := f.Read(buf[:])
	line, _, _ := bytes.Cut(buf[:n], []byte("\n"))
	fields := bytes.Fields(line)
	if len(fields) < 9 || string(fields[0]) != "cpu" {
		return 0, 0, fmt.Errorf("unexpected %s/stat", root)
	}
	var v [8]uint64
	for i := range v {
		if v[i], err = strconv.ParseUint(string(fields[i+1]), 10, 64); err != nil {
			return 0, 0, fmt.Errorf("unexpected %s/stat: %w", root, err)
		}
	}
	idle := v[3] + v[4]
	for _, x := range v {
		all += x
	}
	return all - idle, all, nil
}

// processTicks is a process's user+system time in clock ticks.
func processTicks(root string, pid int) (uint64, error) {
	st, err := procstat.Read(root, pid)
	if err != nil {
		return 0, err
	}
	return st.Ticks(), nil
}
