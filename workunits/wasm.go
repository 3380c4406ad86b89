package workunits

import (
	"errors"
	"fmt"
)

// Module is what momonga reads from a WebAssembly binary's structure before
// it accepts it as an app: the sections, imports and exports. It does not
// validate code: the runtime compiles the module on each host anyway.
type Module struct {
	Imports []Import
	Exports []Export
	Globals []Global // globals the module defines, in index order after the imported ones
}

// Import is one imported function, table, memory or global.
type Import struct {
	Module, Name string
	Kind         byte // 0 func, 1 table, 2 memory, 3 global, 4 tag
}

// Export is one exported item.
type Export struct {
	Name  string
	Kind  byte
	Index uint32
}

// WASIModule is the only import module momonga provides to apps.
const WASIModule = "wasi_snapshot_preview1"

// ParseModule reads the structure of a WebAssembly binary.
func ParseModule(b []byte) (*Module, error) {
	if len(b) < 8 || string(b[:4]) != "\x00asm" {
		return nil, errors.New("not a WebAssembly module (no \\0asm magic)")
	}
	if b[4] != 1 || b[5] != 0 || b[6] != 0 || b[7] != 0 {
		return nil, fmt.Errorf("WebAssembly binary version % x is not 1", b[4:8])
	}
	r := &wasmReader{b: b, off: 8}
	m := &Module{}
	last := byte(0)
	for !r.done() {
		id := r.byte()
		size := r.u32()
		if r.err != nil {
			return nil, r.err
		}
		if uint64(size) > uint64(len(r.b)-r.off) {
			return nil, fmt.Errorf("section %d at byte %d runs past the end of the module", id, r.off)
		}
		body := &wasmReader{b: r.b[:r.off+int(size)], off: r.off}
		r.off += int(size)
		if id > 13 {
			return nil, fmt.Errorf("unknown section id %d", id)
		}
		// Custom sections (0) may stand anywhere; the data-count (12) and tag
		// (13) sections have their own places, which the runtime checks.
		if id != 0 && id < 12 {
			if id <= last {
				return nil, fmt.Errorf("section %d out of order", id)
			}
			last = id
		}
		switch id {
		case 2:
			n := body.u32()
			for i := uint32(0); i < n && body.err == nil; i++ {
				imp := Import{Module: body.name(), Name: body.name(), Kind: body.byte()}
				body.skipImportDesc(imp.Kind)
				m.Imports = append(m.Imports, imp)
			}
		case 6:
			n := body.u32()
			for i := uint32(0); i < n && body.err == nil; i++ {
				g := Global{Type: body.byte(), Mutable: body.byte() == 1}
				body.skipConstExpr()
				m.Globals = append(m.Globals, g)
			}
		case 7:
			n := body.u32()
			for i := uint32(0); i < n && body.err == nil; i++ {
				m.Exports = append(m.Exports, Export{Name: body.name(), Kind: body.byte(), Index: body.u32()})
			}
		default:
			continue
		}
		if body.err != nil {
			return nil, fmt.Errorf("section %d: %w", id, body.err)
		}
		if !body.done() {
			return nil, fmt.Errorf("section %d has %d bytes left over", id, len(body.b)-body.off)
		}
	}
	return m, nil
}

// CheckModule tells whether b can be published as an app: a WebAssembly
// module that imports nothing but WASI and exports a memory and either a
// `_start` command entry or a `step` reactor function.
func CheckModule(b []byte) error {
	m, err := ParseModule(b)
	if err != nil {
		return Errorf(CodeBadRequest, "%v", err)
	}
	for _, imp := range m.Imports {
		if imp.Module != WASIModule {
			return Errorf(CodeBadRequest, "module imports %s.%s; apps may import only %s", imp.Module, imp.Name, WASIModule)
		}
	}
	var memory, entry bool
	for _, e := range m.Exports {
		switch {
		case e.Kind == 2 && e.Name == "memory":
			memory = true
		case e.Kind == 0 && (e.Name == "_start" || e.Name == "step"):
			entry = true
		}
	}
	if !memory || !entry {
		return Errorf(CodeBadRequest, "module must export its memory and a _start (command) or step (reactor) function")
	}
	if m.IsReactor() {
		return checkSnapshotGlobals(m)
	}
	return nil
}

type wasmReader struct {
	b   []byte
	off int
	err error
}

func (r *wasmReader) done() bool { return r.err != nil || r.off >= len(r.b) }

func (r *wasmReader) fail(what string) {
	if r.err == nil {
		r.err = fmt.Errorf("truncated or malformed %s at byte %d", what, r.off)
	}
}

func (r *wasmReader) byte() byte {
	if r.err != nil || r.off >= len(r.b) {
		r.fail("byte")
		return 0
	}
	r.off++
	return r.b[r.off-1]
}

// u32 reads an unsigned LEB128 of at most 32 bits.
func (r *wasmReader) u32() uint32 {
	var v uint32
	for shift := 0; shift < 35; shift += 7 {
		c := r.byte()
		if r.err != nil {
			return 0
		}
		if shift == 28 && c > 0x0f {
			r.fail("integer")
			return 0
		}
		v |= uint32(c&0x7f) << shift
		if c&0x80 == 0 {
			return v
		}
	}
	r.fail("integer")
	return 0
}

func (r *wasmReader) name() string {
	n := r.u32()
	if r.err != nil || uint64(n) > uint64(len(r.b)-r.off) {
		r.fail("name")
		return ""
	}
	s := string(r.b[r.off : r.off+int(n)])
	r.off += int(n)
	return s
}

func (r *wasmReader) limits() {
	flags := r.byte()
	r.u32()
	if flags&1 != 0 {
		r.u32()
	}
}

func (r *wasmReader) skipImportDesc(kind byte) {
	switch kind {
	case 0, 4: // function type index; tag: attribute then type index
		if kind == 4 {
			r.byte()
		}
		r.u32()
	case 1: // table: reference type and limits
		r.byte()
		r.limits()
	case 2: // memory
		r.limits()
	case 3: // global: value type and mutability
		r.byte()
		r.byte()
	default:
		r.fail("import kind")
	}
}
