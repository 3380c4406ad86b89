package host

import (
	"os"
	"path/filepath"
	"testing"
)

func TestParseMeminfo(t *testing.T) {
	total, avail := parseMeminfo([]byte("MemTotal:       24684236 kB\nMemFree:        22514540 kB\nMemAvailable:   23983212 kB\n"))
	if total != 24684236<<10 || avail != 23983212<<10 {
		t.Errorf("total %d, available %d", total, avail)
	}
}

func TestPowerSupply(t *testing.T) {
	write := func(root, dev string, kv map[string]string) {
		dir := filepath.Join(root, dev)
		os.MkdirAll(dir, 0o755)
		for k, v := range kv {
			os.WriteFile(filepath.Join(dir, k), []byte(v+"\n"), 0o644)
		}
	}
	for _, c := range []struct {
		name    string
		ac      string // "" = no adapter
		status  string // "" = no battery
		mouse   bool
		battery bool
		on      bool
	}{
		{name: "desktop"},
		{name: "laptop on mains", ac: "1", status: "Charging", battery: true},
		{name: "laptop unplugged", ac: "0", status: "Discharging", battery: true, on: true},
		{name: "laptop full on mains", ac: "1", status: "Full", battery: true},
		{name: "desktop with wireless mouse", ac: "1", mouse: true},
	} {
		root := t.TempDir()
		if c.ac != "" {
			write(root, "AC", map[string]string{"type": "Mains", "online": c.ac})
		}
		if c.status != "" {
			write(root, "BAT0", map[string]string{"type": "Battery", "status": c.status, "capacity": "80", "scope": "System"})
		}
		if c.mouse {
			write(root, "hidpp_battery_0", map[string]string{"type": "Battery", "status": "Discharging", "capacity": "40", "scope": "Device"})
		}
		p := readPowerSupply(root)
		if p.HasBattery != c.battery || p.OnBattery != c.on {
			t.Errorf("%s: %+v", c.name, p)
		}
		if c.battery && p.BatteryPercent != 80 {
			t.Errorf("%s: charge %v", c.name, p.BatteryPercent)
		}
	}
}
