package host

import (
	"bufio"
	"bytes"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

func memory() (total, available int64) {
	b, err := os.ReadFile("/proc/meminfo")
	if err != nil {
		return 0, 0
	}
	return parseMeminfo(b)
}

// parseMeminfo reads MemTotal and MemAvailable (in kB) from /proc/meminfo.
func parseMeminfo(b []byte) (total, available int64) {
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 2 {
			continue
		}
		n, err := strconv.ParseInt(f[1], 10, 64)
		if err != nil {
			continue
		}
		switch f[0] {
		case "MemTotal:":
			total = n << 10
		case "MemAvailable:":
			available = n << 10
		}
	}
	return total, available
}

func cpuModel() string {
	b, err := os.ReadFile("/proc/cpuinfo")
	if err != nil {
		return ""
	}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if !ok {
			continue
		}
		switch strings.TrimSpace(k) {
		case "model name", "Hardware", "cpu model", "Processor":
			if v = strings.TrimSpace(v); v != "" {
				return v
			}
		}
	}
	return ""
}

func osVersion() string {
	name := ""
	if b, err := os.ReadFile("/etc/os-release"); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if v, ok := strings.CutPrefix(line, "PRETTY_NAME="); ok {
				name = strings.Trim(v, `"'`)
			}
		}
	}
	kernel, _ := os.ReadFile("/proc/sys/kernel/osrelease")
	return strings.TrimSpace(name + " " + strings.TrimSpace(string(kernel)))
}

func disk(dir string) (total, free int64) {
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err != nil {
		return 0, 0
	}
	return int64(st.Blocks) * st.Bsize, int64(st.Bavail) * st.Bsize
}

func power() Power { return readPowerSupply("/sys/class/power_supply") }

// readPowerSupply reads the kernel's power supply classes: the machine is on
// battery when a battery is discharging and no mains adapter is online.
func readPowerSupply(root string) Power {
	var p Power
	entries, _ := os.ReadDir(root)
	mainsOnline, discharging := false, false
	var charge, full float64
	for _, e := range entries {
		dir := filepath.Join(root, e.Name())
		read := func(name string) string {
			b, _ := os.ReadFile(filepath.Join(dir, name))
			return strings.TrimSpace(string(b))
		}
		switch read("type") {
		case "Mains", "USB":
			if read("online") == "1" {
				mainsOnline = true
			}
		case "Battery":
			if read("scope") == "Device" {
				continue // a mouse's or a phone's battery, not the machine's
			}
			p.HasBattery = true
			if read("status") == "Discharging" {
				discharging = true
			}
			if c, err := strconv.ParseFloat(read("capacity"), 64); err == nil {
				charge += c
				full += 100
			}
		}
	}
	p.OnBattery = p.HasBattery && discharging && !mainsOnline
	if full > 0 {
		p.BatteryPercent = 100 * charge / full
	}
	return p
}

// ResidentBytes is a process's resident memory, from /proc/<pid>/statm.
func ResidentBytes(pid int) (int64, bool) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/statm")
	if err != nil {
		return 0, false
	}
	f := strings.Fields(string(b))
	if len(f) < 2 {
		return 0, false
	}
	pages, err := strconv.ParseInt(f[1], 10, 64)
	if err != nil {
		return 0, false
	}
	return pages * int64(os.Getpagesize()), true
}
