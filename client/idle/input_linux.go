package idle

import (
	"bufio"
	"bytes"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/godbus/dbus/v5"

	"github.com/momonga-project/momonga/client/host"
)

// NewMonitor watches this machine: the X display named by $DISPLAY, the
// input devices, the terminals, logind's idle hint where neither of the
// first two can be read, /proc/stat and /sys/class/power_supply.
//
// A system service (the packages' momonga.service) has no display and no
// session of its own; it sees the person through the input devices, which
// the package lets it read through the input group, the terminals' access
// times, and logind's idle hint over the system bus, which covers every
// session, Wayland's included (logind_linux.go).
func NewMonitor(logger *slog.Logger) *Monitor {
	var inputs []InputSource
	var x *x11Input
	if d := os.Getenv("DISPLAY"); d != "" {
		x = newX11Input(d)
		inputs = append(inputs, x)
	}
	ev := newEvdevInput("/dev/input", "/proc/bus/input/devices")
	inputs = append(inputs, ev, newTTYInput("/dev"))
	logind := &logindInput{every: 5 * time.Second, connect: dbus.ConnectSystemBus, wanted: func() bool {
		return (x == nil || !x.working()) && !ev.reading()
	}}
	inputs = append(inputs, logind)
	logger.Debug("idle sources", "display", os.Getenv("DISPLAY"))
	return &Monitor{
		Inputs: inputs,
		CPU:    newProcCPU(),
		Power:  &cachedPower{read: func() bool { return host.PowerNow().OnBattery }, every: 5 * time.Second},
		Closer: func() {
			if x != nil {
				x.close()
			}
			ev.close()
			logind.close()
		},
	}
}

// evdevInput reads the kernel's input devices (keyboards, mice, touchpads)
// when it may, which tells of input the moment it happens without a display
// server, and falls back to the devices' access times otherwise. Only the
// time of an event is kept, never what it was.
type evdevInput struct {
	dir, list string

	last atomic.Int64 // unix nanoseconds of the latest event read

	mu        sync.Mutex
	open      map[string]*os.File
	scannedAt time.Time
	closed    bool
	wg        sync.WaitGroup
}

// evdevRescan is how often new devices (a mouse plugged in) are looked for.
const evdevRescan = 30 * time.Second

func newEvdevInput(dir, list string) *evdevInput {
	return &evdevInput{dir: dir, list: list, open: map[string]*os.File{}}
}

func (e *evdevInput) LastInput(now time.Time) (time.Time, bool) {
	e.mu.Lock()
	if e.scannedAt.IsZero() || now.Sub(e.scannedAt) >= evdevRescan {
		e.scannedAt = now
		e.scan()
	}
	reading := len(e.open) > 0
	e.mu.Unlock()
	if reading {
		if ns := e.last.Load(); ns != 0 {
			return time.Unix(0, ns), true
		}
		return time.Time{}, false
	}
	return latestAtime(filepath.Join(e.dir, "event*"), filepath.Join(e.dir, "mice"))
}

func (e *evdevInput) reading() bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	return len(e.open) > 0
}

// scan opens the devices that people type and point with. The caller holds
// e.mu.
func (e *evdevInput) scan() {
	if e.closed {
		return
	}
	b, err := os.ReadFile(e.list)
	if err != nil {
		return
	}
	for _, name := range humanDevices(b) {
		path := filepath.Join(e.dir, name)
		if e.open[path] != nil {
			continue
		}
		f, err := os.Open(path)
		if err != nil {
			continue // not ours to read: the access time fallback covers it
		}
		e.open[path] = f
		e.wg.Add(1)
		go e.read(path, f)
	}
}

func (e *evdevInput) read(path string, f *os.File) {
	defer e.wg.Done()
	buf := make([]byte, 24*64)
	for {
		if _, err := f.Read(buf); err != nil {
			e.mu.Lock()
			if e.open[path] == f {
				delete(e.open, path) // unplugged: a later scan may find it again
			}
			e.mu.Unlock()
			f.Close()
			return
		}
		e.last.Store(time.Now().UnixNano())
	}
}

func (e *evdevInput) close() {
	e.mu.Lock()
	e.closed = true
	for _, f := range e.open {
		f.Close()
	}
	e.mu.Unlock()
	e.wg.Wait()
}

// humanDevices lists the event devices in /proc/bus/input/devices that
// report keys or relative motion: keyboards, mice and touchpads, not
// accelerometers or lid switches, which move without anyone there.
func humanDevices(list []byte) []string {
	var out []string
	for _, block := range bytes.Split(list, []byte("\n\n")) {
		var handler string
		var ev uint64
		sc := bufio.NewScanner(bytes.NewReader(block))
		for sc.Scan() {
			line := sc.Text()
			if h, ok := strings.CutPrefix(line, "H: Handlers="); ok {
				for _, f := range strings.Fields(h) {
					if strings.HasPrefix(f, "event") {
						handler = f
					}
				}
			}
			if v, ok := strings.CutPrefix(line, "B: EV="); ok {
				ev, _ = strconv.ParseUint(strings.TrimSpace(v), 16, 64)
			}
		}
		const evKey, evRel = 1 << 1, 1 << 2
		if handler != "" && ev&(evKey|evRel) != 0 {
			out = append(out, handler)
		}
	}
	return out
}

// ttyInput reads the terminals' access times, which the kernel moves when
// someone types (to the nearest 8 s, but always on the first key after a
// quiet spell, which is what matters here).
type ttyInput struct{ dev string }

func newTTYInput(dev string) *ttyInput { return &ttyInput{dev: dev} }

func (t *ttyInput) LastInput(time.Time) (time.Time, bool) {
	return latestAtime(filepath.Join(t.dev, "pts", "[0-9]*"), filepath.Join(t.dev, "tty[0-9]*"))
}

func latestAtime(patterns ...string) (time.Time, bool) {
	var latest time.Time
	for _, pattern := range patterns {
		paths, _ := filepath.Glob(pattern)
		for _, p := range paths {
			var st syscall.Stat_t
			if syscall.Stat(p, &st) != nil {
				continue
			}
			if at := time.Unix(st.Atim.Sec, st.Atim.Nsec); at.After(latest) {
				latest = at
			}
		}
	}
	return latest, !latest.IsZero()
}
