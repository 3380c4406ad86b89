package runner

import (
	"fmt"
	"math"

	"github.com/tetratelabs/wazero/experimental"
)

// wasmPage is the unit of WebAssembly memory sizes.
const wasmPage = 64 << 10

// memoryCap is the module's linear memory, bounded by Limits.MemoryBytes.
//
// It plays the part of wazero's WithMemoryLimitPages plus
// WithMemoryCapacityFromMax(true), with two differences that matter here.
// The whole allowance is reserved once and never copied, which is what keeps
// RSS at about the memory in use instead of about four times the cap
// (NOTES.md); but the runtime's own page limit stays at the 4 GiB a 32-bit
// memory can address, so that
//   - a memory.grow beyond the limit reaches Reallocate, which refuses it and
//     remembers how much was asked for: a failure after that is reported as
//     the memory limit, not guessed from the module's exit code;
//   - a module that declares a maximum above the limit still runs within the
//     limit, as it would under WithMemoryLimitPages alone (with capacity from
//     max, wazero refuses to compile it at all).
//
// A module that needs more than the limit at start is refused before it is
// instantiated (see initialMemory), since Reallocate cannot refuse that.
type memoryCap struct {
	limit uint64
	asked uint64 // largest size refused, 0 if none
}

func (m *memoryCap) Allocate(_, max uint64) experimental.LinearMemory {
	reserve := min(max, m.limit, math.MaxInt)
	return &linearMemory{owner: m, buf: reserveLinear(reserve)}
}

// refused says, after a run, whether the module hit the limit and how.
func (m *memoryCap) refused() (string, bool) {
	if m.asked == 0 {
		return "", false
	}
	return fmt.Sprintf("memory limit of %s reached (it asked for %s)", formatBytes(int64(m.limit)), formatBytes(int64(m.asked))), true
}

type linearMemory struct {
	owner *memoryCap
	buf   []byte
}

// Reallocate grows the memory within its reservation, whose bytes are still
// zero as WebAssembly requires; a size past it fails the memory.grow.
func (l *linearMemory) Reallocate(size uint64) []byte {
	if size > uint64(cap(l.buf)) {
		l.owner.asked = max(l.owner.asked, size)
		return nil
	}
	l.buf = l.buf[:size]
	return l.buf
}

func (l *linearMemory) Free() {
	freeLinear(l.buf)
	l.buf = nil
}

// initialMemory returns the initial size in bytes of the memory a module
// defines, read from its memory section (the binary is known to be valid:
// wazero compiled it). CompiledModule tells only about exported memories.
func initialMemory(wasm []byte) (uint64, bool) {
	r := wasmReader{b: wasm[min(8, len(wasm)):]} // magic and version
	for len(r.b) > 0 {
		id := r.byte()
		size := r.uleb()
		if r.bad || size > uint64(len(r.b)) {
			return 0, false
		}
		section := wasmReader{b: r.b[:size]}
		r.b = r.b[size:]
		if id != 5 { // the memory section
			continue
		}
		if section.uleb() == 0 {
			return 0, false
		}
		section.byte() // limits flags; min comes first in every form
		pages := section.uleb()
		return pages * wasmPage, !section.bad
	}
	return 0, false
}

type wasmReader struct {
	b   []byte
	bad bool
}

func (r *wasmReader) byte() byte {
	if len(r.b) == 0 {
		r.bad = true
		return 0
	}
	c := r.b[0]
	r.b = r.b[1:]
	return c
}

func (r *wasmReader) uleb() uint64 {
	var n uint64
	for shift := 0; shift < 64; shift += 7 {
		c := r.byte()
		n |= uint64(c&0x7f) << shift
		if c&0x80 == 0 {
			return n
		}
	}
	r.bad = true
	return 0
}
