package idle

import (
	"log/slog"
	"sync"
	"time"
	"unsafe"

	"golang.org/x/sys/windows"

	"github.com/momonga-project/momonga/client/host"
)

var (
	user32               = windows.NewLazySystemDLL("user32.dll")
	kernel32             = windows.NewLazySystemDLL("kernel32.dll")
	procGetLastInputInfo = user32.NewProc("GetLastInputInfo")
	procGetTickCount     = kernel32.NewProc("GetTickCount")
	procGetSystemTimes   = kernel32.NewProc("GetSystemTimes")
)

// NewMonitor watches this machine through GetLastInputInfo, GetSystemTimes
// and GetSystemPowerStatus. GetLastInputInfo sees the input of the session
// the client runs in: run as a service (session 0) it sees none, and the
// client then behaves as on a machine nobody uses.
func NewMonitor(*slog.Logger) *Monitor {
	return &Monitor{
		Inputs: []InputSource{windowsInput{}},
		CPU:    &windowsCPU{},
		Power:  &cachedPower{read: func() bool { return host.PowerNow().OnBattery }, every: 5 * time.Second},
	}
}

type windowsInput struct{}

type lastInputInfo struct {
	size uint32
	time uint32
}

func (windowsInput) LastInput(now time.Time) (time.Time, bool) {
	info := lastInputInfo{size: uint32(unsafe.Sizeof(lastInputInfo{}))}
	if r, _, _ := procGetLastInputInfo.Call(uintptr(unsafe.Pointer(&info))); r == 0 {
		return time.Time{}, false
	}
	tick, _, _ := procGetTickCount.Call()
	// Both are 32-bit millisecond counters since boot: their difference is
	// right across the wrap every 49.7 days.
	ago := uint32(tick) - info.time
	return now.Add(-time.Duration(ago) * time.Millisecond), true
}

// windowsCPU measures other programs' CPU from GetSystemTimes minus the
// times of our own processes.
type windowsCPU struct {
	mu         sync.Mutex
	at         time.Time
	busy, all  uint64
	ours       map[int]uint64
	last       float64
	haveSample bool
}

func filetime(f windows.Filetime) uint64 { return uint64(f.HighDateTime)<<32 | uint64(f.LowDateTime) }

func (c *windowsCPU) OtherCPU(now time.Time, ours []int) (float64, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.haveSample && now.Sub(c.at) < time.Second {
		return c.last, true
	}
	var idle, kernel, user windows.Filetime
	if r, _, _ := procGetSystemTimes.Call(uintptr(unsafe.Pointer(&idle)), uintptr(unsafe.Pointer(&kernel)), uintptr(unsafe.Pointer(&user))); r == 0 {
		return 0, false
	}
	all := filetime(kernel) + filetime(user) // kernel time includes idle time
	busy := all - filetime(idle)
	oursNow := map[int]uint64{}
	var delta uint64
	for _, pid := range ours {
		h, err := windows.OpenProcess(windows.PROCESS_QUERY_LIMITED_INFORMATION, false, uint32(pid))
		if err != nil {
			continue
		}
		var created, exited, k, u windows.Filetime
		err = windows.GetProcessTimes(h, &created, &exited, &k, &u)
		windows.CloseHandle(h)
		if err != nil {
			continue
		}
		t := filetime(k) + filetime(u)
		oursNow[pid] = t
		if prev, ok := c.ours[pid]; ok && t >= prev {
			delta += t - prev
		} else if c.haveSample {
			delta += t
		}
	}
	first := !c.haveSample
	share := 0.0
	if !first && all > c.all {
		share = min(max((float64(busy-c.busy)-float64(delta))/float64(all-c.all), 0), 1)
	}
	c.at, c.busy, c.all, c.ours, c.haveSample, c.last = now, busy, all, oursNow, true, share
	return share, !first
}
