package idle

import (
	"context"
	"encoding/binary"
	"log/slog"
	"os/exec"
	"regexp"
	"runtime"
	"strconv"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/momonga-project/momonga/client/host"
)

// NewMonitor watches this machine through IOKit's HIDIdleTime (read with
// ioreg: the call itself needs cgo), the load average and pmset.
func NewMonitor(*slog.Logger) *Monitor {
	return &Monitor{
		Inputs: []InputSource{&ioregInput{every: time.Second}},
		CPU:    loadCPU{},
		Power:  &cachedPower{read: func() bool { return host.PowerNow().OnBattery }, every: 30 * time.Second},
	}
}

// ioregInput reads HIDIdleTime, the nanoseconds since the last input of any
// human interface device, at most every `every`.
type ioregInput struct {
	every time.Duration

	mu   sync.Mutex
	at   time.Time
	last time.Time
	ok   bool
}

var hidIdle = regexp.MustCompile(`"HIDIdleTime" = (\d+)`)

func (r *ioregInput) LastInput(now time.Time) (time.Time, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if !r.at.IsZero() && now.Sub(r.at) < r.every {
		return r.last, r.ok
	}
	r.at = now
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, "ioreg", "-c", "IOHIDSystem", "-d", "4", "-r", "-k", "HIDIdleTime").Output()
	r.ok = false
	if m := hidIdle.FindSubmatch(out); err == nil && m != nil {
		if ns, err := strconv.ParseInt(string(m[1]), 10, 64); err == nil {
			r.last, r.ok = now.Add(-time.Duration(ns)), true
		}
	}
	return r.last, r.ok
}

// loadCPU estimates other programs' CPU from the one-minute load average,
// less our own runnable processes: per-process CPU times need Mach calls,
// which need cgo.
type loadCPU struct{}

func (loadCPU) OtherCPU(_ time.Time, ours []int) (float64, bool) {
	raw, err := unix.SysctlRaw("vm.loadavg")
	if err != nil || len(raw) < 16 {
		return 0, false
	}
	// struct loadavg { fixpt_t ldavg[3]; long fscale; }
	load := float64(binary.LittleEndian.Uint32(raw[0:4]))
	scale := float64(binary.LittleEndian.Uint64(raw[len(raw)-8:]))
	if scale == 0 {
		return 0, false
	}
	// The daemon itself is rarely runnable; its workers are.
	other := load/scale - float64(max(len(ours)-1, 0))
	return min(max(other/float64(runtime.NumCPU()), 0), 1), true
}
