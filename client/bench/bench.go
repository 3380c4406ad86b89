// Package bench measures the volunteer client's side of portable checkpoints
// and the cost of the sandbox, for `momonga-project bench checkpoint`
// (README, Performance): how big a checkpoint of a module's memory is, raw,
// compressed and as a delta after one more step, how long it takes to write
// and to restore, and how much slower the sample apps run under wazero than
// the same code built natively.
package bench

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"math"
	"math/rand/v2"
	"time"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"

	"github.com/momonga-project/momonga/client/checkpoint"
	wu "github.com/momonga-project/momonga/workunits"
)

// CheckpointRow is the checkpoint of one memory size.
type CheckpointRow struct {
	MemoryBytes  int           `json:"memory_bytes"`  // linear memory of the module
	NonzeroBytes int           `json:"nonzero_bytes"` // of it, in pages that are not all zero
	FullBytes    int           `json:"full_bytes"`    // the full checkpoint blob
	DeltaBytes   int           `json:"delta_bytes"`   // the delta checkpoint after one more step
	Write        time.Duration `json:"write"`         // read memory and globals, compress, frame, checksum: full
	WriteDelta   time.Duration `json:"write_delta"`   // the same for the delta
	Restore      time.Duration `json:"restore"`       // verify, decompress, write into a fresh instance: full
	WriteMBps    float64       `json:"write_mb_s"`    // memory bytes per second, full write
	RestoreMBps  float64       `json:"restore_mb_s"`
}

// Checkpoints measures a checkpoint for each memory size (MiB), runs times,
// keeping the fastest of each measure: on a shared machine the others are
// the neighbours' load. The module
// is a reactor whose step stores one word into the next 4 KiB page, as a
// step that touches little memory does; its memory is filled beforehand
// with what a numeric app's memory holds: a quarter float64 field, a
// quarter small integers, a quarter repeated records, a quarter zero.
func Checkpoints(ctx context.Context, sizesMiB []int, runs int) ([]CheckpointRow, error) {
	var rows []CheckpointRow
	for _, mib := range sizesMiB {
		if mib <= 0 || mib&(mib-1) != 0 || mib > 2048 {
			return nil, fmt.Errorf("memory size %d MiB: use a power of two up to 2048", mib)
		}
		var best CheckpointRow
		for run := range max(runs, 1) {
			row, err := checkpointRow(ctx, mib<<20)
			if err != nil {
				return nil, fmt.Errorf("%d MiB: %w", mib, err)
			}
			if run == 0 {
				best = row
				continue
			}
			best.Write, best.WriteDelta, best.Restore = min(best.Write, row.Write), min(best.WriteDelta, row.WriteDelta), min(best.Restore, row.Restore)
		}
		mb := float64(best.MemoryBytes) / 1e6
		best.WriteMBps, best.RestoreMBps = mb/best.Write.Seconds(), mb/best.Restore.Seconds()
		rows = append(rows, best)
	}
	return rows, nil
}

func checkpointRow(ctx context.Context, size int) (CheckpointRow, error) {
	row := CheckpointRow{MemoryBytes: size}
	rt := wazero.NewRuntime(ctx)
	defer rt.Close(ctx)
	wasm := stepModule(size)
	compiled, err := rt.CompileModule(ctx, wasm)
	if err != nil {
		return row, err
	}
	app := wu.HashOf(wasm)
	mod, err := rt.InstantiateModule(ctx, compiled, wazero.NewModuleConfig().WithName(""))
	if err != nil {
		return row, err
	}
	view, _ := mod.Memory().Read(0, uint32(size))
	fill(view)
	step := mod.ExportedFunction("step")
	if _, err := step.Call(ctx); err != nil {
		return row, err
	}
	row.NonzeroBytes = nonzero(view)

	enc := checkpoint.NewEncoder()
	snapshot := func(seq uint64) ([]byte, time.Duration, error) {
		start := time.Now()
		g := mod.ExportedGlobal("counter")
		view, _ := mod.Memory().Read(0, mod.Memory().Size())
		blob, err := enc.Encode(&checkpoint.State{
			Header: wu.CheckpointHeader{Kind: wu.CheckpointMemory, App: app, Task: "bench", Seq: seq, Host: &wu.HostState{},
				Globals: []wu.GlobalValue{{Name: "counter", Type: g.Type(), Bits: g.Get()}}},
			Memory: view,
		})
		return blob, time.Since(start), err
	}
	full, d, err := snapshot(1)
	if err != nil {
		return row, err
	}
	row.FullBytes, row.Write = len(full), d
	if _, err := step.Call(ctx); err != nil {
		return row, err
	}
	delta, d, err := snapshot(2)
	if err != nil {
		return row, err
	}
	row.DeltaBytes, row.WriteDelta = len(delta), d
	want := bytes.Clone(view)
	mod.Close(ctx)

	start := time.Now()
	st, _, err := checkpoint.Decode([][]byte{full}, app, "bench", checkpoint.Limits{MemoryBytes: uint64(size), DataBytes: 1 << 20})
	if err != nil {
		return row, err
	}
	fresh, err := rt.InstantiateModule(ctx, compiled, wazero.NewModuleConfig().WithName(""))
	if err != nil {
		return row, err
	}
	defer fresh.Close(ctx)
	restored, _ := fresh.Memory().Read(0, uint32(size))
	copy(restored, st.Memory)
	fresh.ExportedGlobal("counter").(api.MutableGlobal).Set(st.Header.Globals[0].Bits)
	row.Restore = time.Since(start)
	if st2, _, err := checkpoint.Decode([][]byte{full, delta}, app, "bench", checkpoint.Limits{MemoryBytes: uint64(size), DataBytes: 1 << 20}); err != nil || !bytes.Equal(st2.Memory, want) {
		return row, fmt.Errorf("the delta did not restore the memory (%v)", err)
	}
	return row, nil
}

// fill writes what the benchmark takes for a numeric app's memory.
func fill(m []byte) {
	q := len(m) / 4
	for i := 0; i+8 <= q; i += 8 {
		x := float64(i/8) * 1e-4
		binary.LittleEndian.PutUint64(m[i:], math.Float64bits(math.Sin(x)*math.Cos(3*x)))
	}
	r := rand.New(rand.NewPCG(1, 2))
	for i := q; i+4 <= 2*q; i += 4 {
		binary.LittleEndian.PutUint32(m[i:], uint32(200+(i/4096)%50*7+r.IntN(4)))
	}
	record := []byte("particle id=00000000 x=+0.000000 y=+0.000000 state=active\n")
	for i := 2 * q; i < 3*q; i += len(record) {
		binary.BigEndian.PutUint32(record[12:], uint32(i))
		copy(m[i:3*q], record)
	}
}

func nonzero(m []byte) int {
	n := 0
	for i := 0; i < len(m); i += checkpoint.PageBytes {
		if !bytes.Equal(m[i:i+checkpoint.PageBytes], zeroPage[:]) {
			n += checkpoint.PageBytes
		}
	}
	return n
}

var zeroPage [checkpoint.PageBytes]byte

// stepModule assembles a reactor with size bytes of memory, a mutable i64
// global "counter" and a step function that increments the counter and
// stores it into page counter mod (size / 4 KiB).
func stepModule(size int) []byte {
	sleb := func(v int64) []byte {
		var b []byte
		for {
			c := byte(v & 0x7f)
			v >>= 7
			if v == 0 && c&0x40 == 0 || v == -1 && c&0x40 != 0 {
				return append(b, c)
			}
			b = append(b, c|0x80)
		}
	}
	uleb := func(v uint64) []byte { return binary.AppendUvarint(nil, v) }
	section := func(id byte, parts ...[]byte) []byte {
		body := bytes.Join(parts, nil)
		return append(append([]byte{id}, uleb(uint64(len(body)))...), body...)
	}
	name := func(s string) []byte { return append(uleb(uint64(len(s))), s...) }
	pages := uint64(size / 65536)
	code := bytes.Join([][]byte{
		{0x23, 0}, {0x42, 1}, {0x7c}, {0x24, 0}, // counter++
		{0x23, 0}, {0xa7}, {0x41, 12}, {0x74}, {0x41}, sleb(int64(size - 1)), {0x71}, // (counter << 12) & (size-1)
		{0x23, 0}, {0x37, 3, 0}, // i64.store
		{0x41, 0}, {0x0b}, // return 0: call again
	}, nil)
	body := append([]byte{0}, code...)
	return bytes.Join([][]byte{
		[]byte("\x00asm\x01\x00\x00\x00"),
		section(1, []byte{1, 0x60, 0, 1, 0x7f}),
		section(3, []byte{1, 0}),
		section(5, []byte{1, 1}, uleb(pages), uleb(pages)),
		section(6, []byte{1, 0x7e, 1, 0x42, 0, 0x0b}),
		section(7, []byte{3}, name("memory"), []byte{2, 0}, name("step"), []byte{0, 0}, name("counter"), []byte{3, 0}),
		section(10, []byte{1}, uleb(uint64(len(body))), body),
	}, nil)
}
