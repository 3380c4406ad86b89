package sched

import (
	"encoding/json"

	wu "github.com/momonga-project/momonga/workunits"
)

// hostInfo is a host's description (wu.HostInfo) as the scheduler keeps
// it. A million hosts run a few hundred platforms, so what a platform
// names (its OS, CPU and engine) is one value its hosts point to, and a
// host holds only its own name and figures: some 90 bytes less per host
// than wu.HostInfo. It reads and writes JSON exactly as wu.HostInfo does.
type hostInfo struct {
	plat       *platform // nil: all empty
	Name, CPID string
	// Hello.Validate bounds both (4096 cores, 14 hours) well within 32 bits.
	CPUs, Timezone int32
	MemoryBytes    int64
	DiskFreeBytes  int64
	DiskTotalBytes int64
	FLOPS, IOPS    float64
	MemBytesPerSec float64
	WasmOPS        float64
	Throttle       float64
}

type platform struct{ OS, OSVersion, Arch, CPUVendor, CPUModel, Engine string }

// maxPlatforms bounds the shared platforms, as hosts choose them: past it,
// a new one is a host's own.
const maxPlatforms = 1 << 16

// compact makes in a hostInfo, its platform shared with the hosts' that
// have the same.
func (m *Machine) compact(in wu.HostInfo) hostInfo {
	hi := describe(in)
	if hi.plat == nil {
		return hi
	}
	if p, ok := m.platforms[*hi.plat]; ok {
		hi.plat = p
	} else if len(m.platforms) < maxPlatforms {
		m.platforms[*hi.plat] = hi.plat
	}
	return hi
}

// describe makes in a hostInfo with a platform of its own.
func describe(in wu.HostInfo) hostInfo {
	hi := hostInfo{Name: in.Name, CPID: in.CPID, CPUs: int32(in.CPUs), Timezone: int32(in.Timezone), MemoryBytes: in.MemoryBytes,
		DiskFreeBytes: in.DiskFreeBytes, DiskTotalBytes: in.DiskTotalBytes, FLOPS: in.FLOPS, IOPS: in.IOPS,
		MemBytesPerSec: in.MemBytesPerSec, WasmOPS: in.WasmOPS, Throttle: in.Throttle}
	if p := (platform{in.OS, in.OSVersion, in.Arch, in.CPUVendor, in.CPUModel, in.Engine}); p != (platform{}) {
		hi.plat = &p
	}
	return hi
}

// wire is the description as the wire and the stats site carry it.
func (hi hostInfo) wire() wu.HostInfo {
	in := wu.HostInfo{Name: hi.Name, CPID: hi.CPID, CPUs: int(hi.CPUs), Timezone: int(hi.Timezone), MemoryBytes: hi.MemoryBytes,
		DiskFreeBytes: hi.DiskFreeBytes, DiskTotalBytes: hi.DiskTotalBytes, FLOPS: hi.FLOPS, IOPS: hi.IOPS,
		MemBytesPerSec: hi.MemBytesPerSec, WasmOPS: hi.WasmOPS, Throttle: hi.Throttle}
	if p := hi.plat; p != nil {
		in.OS, in.OSVersion, in.Arch, in.CPUVendor, in.CPUModel, in.Engine = p.OS, p.OSVersion, p.Arch, p.CPUVendor, p.CPUModel, p.Engine
	}
	return in
}

// MarshalJSON writes the description as wu.HostInfo: snapshots hold it so.
func (hi hostInfo) MarshalJSON() ([]byte, error) { return json.Marshal(hi.wire()) }

// UnmarshalJSON reads a wu.HostInfo; Restore then shares its platform.
func (hi *hostInfo) UnmarshalJSON(b []byte) error {
	var in wu.HostInfo
	if err := json.Unmarshal(b, &in); err != nil {
		return err
	}
	*hi = describe(in)
	return nil
}
