package idle

import (
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"testing"
	"time"
)

func TestHumanDevices(t *testing.T) {
	list := `I: Bus=0019 Vendor=0000 Product=0001 Version=0000
N: Name="Lid Switch"
H: Handlers=event0
B: EV=21
B: SW=1

I: Bus=0011 Vendor=0001 Product=0001 Version=ab83
N: Name="AT Translated Set 2 keyboard"
H: Handlers=sysrq kbd leds event3
B: EV=120013

I: Bus=0018 Vendor=06cb Product=cd8b Version=0100
N: Name="Accelerometer"
H: Handlers=event7
B: EV=9

I: Bus=0003 Vendor=046d Product=c077 Version=0111
N: Name="Logitech USB Optical Mouse"
H: Handlers=mouse0 event12
B: EV=17
`
	if got, want := humanDevices([]byte(list)), []string{"event3", "event12"}; !reflect.DeepEqual(got, want) {
		t.Errorf("human devices %v, want %v", got, want)
	}
}

func TestTTYAccessTimes(t *testing.T) {
	dev := t.TempDir()
	os.MkdirAll(filepath.Join(dev, "pts"), 0o755)
	for _, name := range []string{"pts/0", "pts/3", "tty1", "ttyS0"} {
		os.WriteFile(filepath.Join(dev, name), nil, 0o600)
	}
	old := time.Now().Add(-time.Hour).Truncate(time.Second)
	recent := old.Add(50 * time.Minute)
	os.Chtimes(filepath.Join(dev, "pts/0"), old, old)
	os.Chtimes(filepath.Join(dev, "tty1"), old, old)
	os.Chtimes(filepath.Join(dev, "pts/3"), recent, old)
	os.Chtimes(filepath.Join(dev, "ttyS0"), time.Now(), old) // a serial line is nobody typing
	got, ok := newTTYInput(dev).LastInput(time.Now())
	if !ok || !got.Equal(recent) {
		t.Errorf("last input %v (%v), want %v", got, ok, recent)
	}
}

func TestProcCPU(t *testing.T) {
	root := t.TempDir()
	write := func(name, content string) {
		os.MkdirAll(filepath.Dir(filepath.Join(root, name)), 0o755)
		os.WriteFile(filepath.Join(root, name), []byte(content), 0o644)
	}
	stat := func(user, idle int) string {
		return "cpu  " + strconv.Itoa(user) + " 0 0 " + strconv.Itoa(idle) + " 0 0 0 0 0 0\ncpu0 1 2 3\n"
	}
	pidStat := func(ticks int) string {
		return "42 (momonga worker) S 1 42 42 0 -1 4194560 100 0 0 0 " + strconv.Itoa(ticks) + " 0 0 0 20 0 1 0 100 0 0\n"
	}
	c := newProcCPU()
	c.root = root
	now := time.Unix(1000, 0)
	write("stat", stat(1000, 1000))
	write("42/stat", pidStat(100))
	if _, ok := c.OtherCPU(now, []int{42}); ok {
		t.Error("a share from a single sample")
	}
	// 200 ticks pass: 150 busy, of which our worker used 100.
	now = now.Add(2 * time.Second)
	write("stat", stat(1150, 1050))
	write("42/stat", pidStat(200))
	if share, ok := c.OtherCPU(now, []int{42}); !ok || share != 0.25 {
		t.Errorf("other programs' share %v (%v), want 0.25", share, ok)
	}
	// Within the minimum window the last reading stands.
	write("stat", stat(1350, 1050))
	if share, _ := c.OtherCPU(now.Add(100*time.Millisecond), []int{42}); share != 0.25 {
		t.Errorf("share %v inside the window", share)
	}
}
