// Package host measures the volunteer's machine (DESIGN §7): what it has
// (cores, memory, the data directory's disk, OS and CPU model, battery) and
// how fast it is (benchmarks). The daemon reports both when it registers
// with a project, which uses them to pick work that fits and finishes in
// time. Platform calls live in host_<os>.go; everything here is portable.
package host

import (
	"fmt"
	"runtime"
)

// Info is what the machine has, measured now.
type Info struct {
	OS                   string `json:"os"`
	Arch                 string `json:"arch"`
	OSVersion            string `json:"os_version,omitempty"`
	CPUModel             string `json:"cpu_model,omitempty"`
	Cores                int    `json:"cores"`
	MemoryBytes          int64  `json:"memory_bytes,omitempty"`
	MemoryAvailableBytes int64  `json:"memory_available_bytes,omitempty"`
	DiskTotalBytes       int64  `json:"disk_total_bytes,omitempty"` // the data directory's file system
	DiskFreeBytes        int64  `json:"disk_free_bytes,omitempty"`  // available to this user there
	Power                Power  `json:"power"`
}

// Power is the machine's power source.
type Power struct {
	HasBattery     bool    `json:"has_battery"`
	OnBattery      bool    `json:"on_battery"`                // running from the battery, not mains
	BatteryPercent float64 `json:"battery_percent,omitempty"` // charge, when known
}

// Measure reads what the machine has. Parts that cannot be read on this
// platform are left zero: a missing figure must not stop a volunteer.
func Measure(dataDir string) Info {
	in := Info{OS: runtime.GOOS, Arch: runtime.GOARCH, Cores: runtime.NumCPU()}
	in.MemoryBytes, in.MemoryAvailableBytes = memory()
	in.CPUModel = cpuModel()
	in.OSVersion = osVersion()
	in.DiskTotalBytes, in.DiskFreeBytes = disk(dataDir)
	in.Power = power()
	return in
}

// Fingerprint identifies the hardware: when it changes, the benchmarks are
// run again. Memory is rounded, since the kernel's total moves a little
// between boots.
func (in Info) Fingerprint() string {
	const unit = 256 << 20
	return fmt.Sprintf("%s/%s/%d/%d/%s", in.OS, in.Arch, in.Cores, (in.MemoryBytes+unit/2)/unit, in.CPUModel)
}

// PowerNow reads only the power source, which changes far more often than
// the rest.
func PowerNow() Power { return power() }
