package host

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"os"
	"os/exec"
	"time"

	"github.com/momonga-project/momonga/apps"
	"github.com/momonga-project/momonga/client/runner"
)

// Benchmarks are how fast one core of the machine is. Like BOINC's they are
// synthetic and rough; they exist to estimate how long a task will take and
// to compare hosts, so they favour being quick (the whole set in well under
// 5 s) over being precise.
type Benchmarks struct {
	FLOPS          float64   `json:"flops"`             // Whetstone-like floating point, operations per second
	IOPS           float64   `json:"iops"`              // Dhrystone-like integer, operations per second
	MemBytesPerSec float64   `json:"mem_bytes_per_sec"` // memory copy bandwidth, bytes read and written per second
	WasmOPS        float64   `json:"wasm_ops"`          // integers sieved per second by the primes app on Engine
	Engine         string    `json:"engine,omitempty"`  // the engine the host's tasks run on (runner.Engines)
	Seconds        float64   `json:"seconds"`           // how long the whole set took, compilation included
	At             time.Time `json:"at"`                // when they ran
	Fingerprint    string    `json:"fingerprint"`       // the hardware they ran on (Info.Fingerprint)
}

// BenchConfig bounds the benchmarks.
type BenchConfig struct {
	Each     time.Duration // time given to each kernel; 0 = DefaultBenchTime
	CacheDir string        // wazero's compilation cache (the workers'), "" for none
}

// DefaultBenchTime is each kernel's time: four kernels and the first
// compilation of the reference module stay under 5 s.
const DefaultBenchTime = 400 * time.Millisecond

// RerunAfter is how old benchmarks may get before they are run again.
const RerunAfter = 5 * 24 * time.Hour

// Stale reports whether b should be run again on a machine described by in
// at now: never run, too old, or run on other hardware.
func (b Benchmarks) Stale(in Info, now time.Time) bool {
	return b.At.IsZero() || now.Sub(b.At) > RerunAfter || now.Before(b.At) || b.Fingerprint != in.Fingerprint()
}

// sink keeps the kernels' results alive so the compiler cannot drop them.
var sink float64

// RunBenchmarks runs every benchmark in this process, one core at a time.
func RunBenchmarks(ctx context.Context, cfg BenchConfig, in Info) (Benchmarks, error) {
	if cfg.Each <= 0 {
		cfg.Each = DefaultBenchTime
	}
	start := time.Now()
	b := Benchmarks{At: start, Fingerprint: in.Fingerprint()}
	b.FLOPS = rate(cfg.Each, whetstone)
	b.IOPS = rate(cfg.Each, dhrystone)
	b.MemBytesPerSec = memoryBandwidth(cfg.Each)
	b.Engine = runner.DefaultEngine()
	w, err := wasmSpeed(ctx, cfg, b.Engine)
	if err != nil {
		return b, fmt.Errorf("wasm benchmark on %s: %w", b.Engine, err)
	}
	b.WasmOPS = w
	b.Seconds = time.Since(start).Seconds()
	return b, nil
}

// rate runs kernel in rounds until d has passed and returns operations per
// second; kernel does one round and returns the operations it did.
func rate(d time.Duration, kernel func() float64) float64 {
	start := time.Now()
	ops := 0.0
	for time.Since(start) < d {
		ops += kernel()
	}
	return ops / time.Since(start).Seconds()
}

// whetstone is one round of Whetstone's flavour: array arithmetic,
// transcendental functions and divisions, about a million floating-point
// operations. Only the operations themselves are counted.
func whetstone() float64 {
	const n = 20000
	x1, x2, x3, x4 := 1.0, -1.0, -1.0, -1.0
	t, t2 := 0.499975, 2.0
	ops := 0.0
	for i := 0; i < n; i++ {
		x1 = (x1 + x2 + x3 - x4) * t
		x2 = (x1 + x2 - x3 + x4) * t
		x3 = (x1 - x2 + x3 + x4) * t
		x4 = (-x1 + x2 + x3 + x4) / t2
		ops += 16
	}
	y := 0.5
	for i := 0; i < n/10; i++ {
		y = t * math.Atan(t2*math.Sin(y)*math.Cos(y)/(math.Cos(y+x1)+math.Cos(y-x1)-1))
		z := math.Sqrt(math.Exp(math.Log(math.Abs(y)+1) / t2))
		y += z * 1e-9
		ops += 12
	}
	sink += x1 + x2 + x3 + x4 + y
	return ops
}

// record is Dhrystone's record type, copied and compared as it does.
type record struct {
	next    *record
	kind    int
	intComp int
	str     [30]byte
}

// dhrystone is one round of Dhrystone's flavour: integer arithmetic,
// branches, record assignment, string copy and compare. Each loop is
// counted as Dhrystone counts: one "dhrystone" per pass.
func dhrystone() float64 {
	const n = 20000
	var a, b record
	a.next = &b
	copy(a.str[:], "DHRYSTONE PROGRAM, SOME STRING")
	sum := 0
	for i := 0; i < n; i++ {
		b = a
		b.intComp = i*3 + 7
		if b.intComp%5 == 0 {
			b.kind = 1
		} else {
			b.kind = 2
		}
		b.str[i%30] = byte('A' + i%26)
		if bytes.Equal(a.str[:], b.str[:]) {
			sum++
		}
		for j := 0; j < 8; j++ {
			sum += (b.intComp ^ j) >> 1
			sum -= j * b.kind
		}
	}
	sink += float64(sum)
	return n * 10 // about ten Dhrystone statements per pass
}

// memoryBandwidth copies buffers far larger than any cache.
func memoryBandwidth(d time.Duration) float64 {
	const size = 16 << 20
	src := make([]byte, size)
	dst := make([]byte, size)
	for i := range src {
		src[i] = byte(i)
	}
	bps := rate(d, func() float64 {
		copy(dst, src)
		return 2 * size // read and written
	})
	sink += float64(dst[size/3])
	return bps
}

// wasmSpeed runs the primes app, the kind of module tasks are, on the
// engine tasks run on (in the worker executable, the faster one):
// integers sieved per second. The module is compiled once (from the cache
// the workers share, when there is one).
func wasmSpeed(ctx context.Context, cfg BenchConfig, engine string) (float64, error) {
	const span = 2_000_000
	var elapsed time.Duration
	sieved := 0.0
	for i := 0; sieved == 0 || elapsed < cfg.Each; i++ {
		lo := uint64(1_000_000_000 + i*span)
		d, err := runner.TimeCommand(ctx, engine, apps.Primes, cfg.CacheDir, [][]string{{"primes", fmt.Sprint(lo), fmt.Sprint(lo + span)}})
		if err != nil {
			return 0, err
		}
		elapsed += d
		sieved += span
	}
	return sieved / elapsed.Seconds(), nil
}

// BenchmarkMain is the body of the client's hidden benchmark command: the
// daemon runs the benchmarks in a child process, so the memory and code
// they touch never stay in the daemon. It writes Benchmarks as JSON.
func BenchmarkMain(ctx context.Context, out io.Writer, dataDir, cacheDir string) int {
	b, err := RunBenchmarks(ctx, BenchConfig{CacheDir: cacheDir}, Measure(dataDir))
	if err != nil {
		fmt.Fprintln(os.Stderr, "momonga benchmark:", err)
		return 1
	}
	if err := json.NewEncoder(out).Encode(b); err != nil {
		return 1
	}
	return 0
}

// RunBenchmarkCommand runs command (which ends in BenchmarkMain) and reads
// its Benchmarks.
func RunBenchmarkCommand(ctx context.Context, command []string) (Benchmarks, error) {
	var b Benchmarks
	if len(command) == 0 {
		return b, fmt.Errorf("benchmark: no command")
	}
	var stdout, stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, command[0], command[1:]...)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return b, fmt.Errorf("benchmark: %w: %s", err, bytes.TrimSpace(stderr.Bytes()))
	}
	if err := json.Unmarshal(stdout.Bytes(), &b); err != nil {
		return b, fmt.Errorf("benchmark: malformed output: %w", err)
	}
	return b, nil
}
