package workunits

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
)

// Global is the type of a global the module defines.
type Global struct {
	Type    byte // value type: 0x7f i32, 0x7e i64, 0x7d f32, 0x7c f64, 0x7b v128, 0x70/0x6f references
	Mutable bool
}

// Value types a memory snapshot can hold in a global.
const (
	ValueI32 byte = 0x7f
	ValueI64 byte = 0x7e
	ValueF32 byte = 0x7d
	ValueF64 byte = 0x7c
)

// GlobalExportPrefix starts the names under which PrepareModule exports the
// mutable globals of a reactor module, followed by the global's index.
const GlobalExportPrefix = "momonga.global."

// IsReactor reports whether the module is a reactor: it exports `step`, which
// the runner calls again and again, snapshotting the module in between
// (DESIGN §6).
func (m *Module) IsReactor() bool {
	for _, e := range m.Exports {
		if e.Kind == 0 && e.Name == "step" {
			return true
		}
	}
	return false
}

// importedGlobals counts the globals the module imports: they come first in
// the global index space.
func (m *Module) importedGlobals() uint32 {
	n := uint32(0)
	for _, imp := range m.Imports {
		if imp.Kind == 3 {
			n++
		}
	}
	return n
}

// MutableGlobalExports maps the index of every mutable global the module
// defines to the name of one export of it ("" when it is not exported).
func (m *Module) MutableGlobalExports() map[uint32]string {
	out := map[uint32]string{}
	base := m.importedGlobals()
	for i, g := range m.Globals {
		if g.Mutable {
			out[base+uint32(i)] = ""
		}
	}
	for _, e := range m.Exports {
		if name, ok := out[e.Index]; e.Kind == 3 && ok && name == "" {
			out[e.Index] = e.Name
		}
	}
	return out
}

// checkSnapshotGlobals makes sure that the runner can read and restore every
// mutable global of a reactor: each is exported and holds a number.
func checkSnapshotGlobals(m *Module) error {
	if m.importedGlobals() > 0 {
		return Errorf(CodeBadRequest, "a reactor module may not import globals")
	}
	var hidden []string
	exports := m.MutableGlobalExports()
	for idx, g := range m.Globals {
		name, mutable := exports[uint32(idx)]
		if !mutable {
			continue
		}
		switch g.Type {
		case ValueI32, ValueI64, ValueF32, ValueF64:
		default:
			return Errorf(CodeBadRequest, "mutable global %d holds type 0x%02x, which a memory snapshot cannot carry", idx, g.Type)
		}
		if name == "" {
			hidden = append(hidden, strconv.Itoa(idx))
		}
	}
	if len(hidden) > 0 {
		return Errorf(CodeBadRequest, "reactor module does not export its mutable globals %s, so it cannot be checkpointed: "+
			"publish it with `momonga-project app add`, which exports them", strings.Join(hidden, ", "))
	}
	return nil
}

// PrepareModule is what `app add` does to a module before it is published:
// a reactor gets an export for each mutable global it does not export yet
// (ExportMutableGlobals), then the result is checked with CheckModule. A
// command module is returned as it is, once checked.
func PrepareModule(b []byte) ([]byte, error) {
	m, err := ParseModule(b)
	if err != nil {
		return nil, Errorf(CodeBadRequest, "%v", err)
	}
	if m.IsReactor() {
		if b, err = ExportMutableGlobals(b); err != nil {
			return nil, Errorf(CodeBadRequest, "%v", err)
		}
	}
	if err := CheckModule(b); err != nil {
		return nil, err
	}
	return b, nil
}

// ExportMutableGlobals returns a copy of the module b in which every mutable
// global that was not exported is exported as GlobalExportPrefix+index, so
// that a runtime that can read only exported globals can snapshot them all.
// Go's wasm output keeps eight such globals, the stack pointer among them
// (NOTES.md). Nothing else changes: the code, and so what the module
// computes, is the same. A module with nothing to add is returned unchanged.
func ExportMutableGlobals(b []byte) ([]byte, error) {
	m, err := ParseModule(b)
	if err != nil {
		return nil, err
	}
	var add []byte
	added := uint32(0)
	taken := map[string]bool{}
	for _, e := range m.Exports {
		taken[e.Name] = true
	}
	exports := m.MutableGlobalExports()
	for i := range m.Globals {
		idx := m.importedGlobals() + uint32(i)
		if name, mutable := exports[idx]; !mutable || name != "" {
			continue
		}
		name := GlobalExportPrefix + strconv.FormatUint(uint64(idx), 10)
		if taken[name] {
			return nil, fmt.Errorf("the module already exports something else as %q", name)
		}
		add = appendName(add, name)
		add = append(add, 3)
		add = appendU32(add, idx)
		added++
	}
	if added == 0 {
		return b, nil
	}

	// A new export section goes right after the last section that must
	// precede it (types, imports, functions, tables, memories, globals,
	// ids 1-6), wherever custom, data-count or tag sections stand.
	type span struct {
		id         byte
		start, end int
	}
	var spans []span
	r := &wasmReader{b: b, off: 8}
	insertAt := 8
	for !r.done() {
		start := r.off
		id := r.byte()
		size := r.u32()
		if r.err != nil {
			return nil, r.err
		}
		end := r.off + int(size)
		spans = append(spans, span{id, start, end})
		if id >= 1 && id <= 6 {
			insertAt = end
		}
		r.off = end
	}
	// An export section that exists is extended where it stands.
	extendOnly := slices.ContainsFunc(spans, func(sp span) bool { return sp.id == 7 })
	out := append([]byte(nil), b[:8]...)
	written := false
	for _, sp := range spans {
		if sp.id == 7 {
			body := &wasmReader{b: b[:sp.end], off: sp.start + 1}
			body.u32() // the section's size
			n := body.u32()
			if body.err != nil {
				return nil, body.err
			}
			sec := appendU32(nil, n+added)
			sec = append(sec, b[body.off:sp.end]...)
			sec = append(sec, add...)
			out = appendSection(out, 7, sec)
			written = true
			continue
		}
		if !extendOnly && !written && sp.start == insertAt {
			out = appendSection(out, 7, append(appendU32(nil, added), add...))
			written = true
		}
		out = append(out, b[sp.start:sp.end]...)
	}
	if !extendOnly && !written {
		out = appendSection(out, 7, append(appendU32(nil, added), add...))
	}
	return out, nil
}

func appendU32(b []byte, v uint32) []byte {
	for {
		c := byte(v & 0x7f)
		v >>= 7
		if v == 0 {
			return append(b, c)
		}
		b = append(b, c|0x80)
	}
}

func appendName(b []byte, s string) []byte {
	return append(appendU32(b, uint32(len(s))), s...)
}

func appendSection(b []byte, id byte, body []byte) []byte {
	return append(appendU32(append(b, id), uint32(len(body))), body...)
}

// skipConstExpr reads past a constant expression (a global's initial value)
// up to and including its end opcode.
func (r *wasmReader) skipConstExpr() {
	for r.err == nil {
		switch op := r.byte(); op {
		case 0x0b: // end
			return
		case 0x41, 0x42: // i32.const, i64.const: signed LEB128
			r.sleb()
		case 0x43: // f32.const
			r.skip(4)
		case 0x44: // f64.const
			r.skip(8)
		case 0x23, 0xd2: // global.get, ref.func
			r.u32()
		case 0xd0: // ref.null
			r.byte()
		case 0x6a, 0x6b, 0x6c, 0x7c, 0x7d, 0x7e: // extended constant arithmetic
		case 0xfd: // v128.const
			if r.u32() != 12 {
				r.fail("constant expression")
				return
			}
			r.skip(16)
		default:
			r.fail("constant expression")
			return
		}
	}
}

func (r *wasmReader) sleb() {
	for i := 0; i < 10; i++ {
		if r.byte()&0x80 == 0 {
			return
		}
	}
	r.fail("integer")
}

func (r *wasmReader) skip(n int) {
	if r.err != nil || n > len(r.b)-r.off {
		r.fail("constant")
		return
	}
	r.off += n
}
