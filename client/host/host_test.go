package host

import (
	"context"
	"runtime"
	"testing"
	"time"
)

func TestMeasure(t *testing.T) {
	in := Measure(t.TempDir())
	if in.Cores != runtime.NumCPU() || in.OS != runtime.GOOS || in.Arch != runtime.GOARCH {
		t.Errorf("measured %+v", in)
	}
	if runtime.GOOS == "linux" {
		if in.MemoryBytes <= 0 || in.MemoryAvailableBytes <= 0 || in.MemoryAvailableBytes > in.MemoryBytes {
			t.Errorf("memory %d, available %d", in.MemoryBytes, in.MemoryAvailableBytes)
		}
		if in.DiskTotalBytes <= 0 || in.DiskFreeBytes < 0 || in.DiskFreeBytes > in.DiskTotalBytes {
			t.Errorf("disk %d, free %d", in.DiskTotalBytes, in.DiskFreeBytes)
		}
	}
	t.Logf("%+v", in)
}

func TestBenchmarks(t *testing.T) {
	in := Measure(t.TempDir())
	b, err := RunBenchmarks(context.Background(), BenchConfig{Each: 20 * time.Millisecond, CacheDir: t.TempDir()}, in)
	if err != nil {
		t.Fatal(err)
	}
	if b.FLOPS <= 0 || b.IOPS <= 0 || b.MemBytesPerSec <= 0 || b.WasmOPS <= 0 || b.Seconds <= 0 {
		t.Errorf("benchmarks %+v", b)
	}
	t.Logf("%.3g flops, %.3g iops, %.3g B/s, %.3g sieved/s under wazero, in %.2f s", b.FLOPS, b.IOPS, b.MemBytesPerSec, b.WasmOPS, b.Seconds)
	if b.Stale(in, b.At.Add(time.Hour)) {
		t.Error("fresh benchmarks are stale")
	}
	if !b.Stale(in, b.At.Add(RerunAfter+time.Minute)) {
		t.Error("benchmarks older than RerunAfter are not stale")
	}
	other := in
	other.Cores++
	if !b.Stale(other, b.At.Add(time.Hour)) {
		t.Error("benchmarks of other hardware are not stale")
	}
	if !(Benchmarks{}).Stale(in, b.At) {
		t.Error("benchmarks never run are not stale")
	}
}
