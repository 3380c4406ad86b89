package runner

// Tiny modules assembled by hand, for what a Go program cannot express: a
// spin with no calls at all, wasm-level recursion, memory.grow without end,
// odd imports and exits.

// uleb and sleb are the LEB128 encodings of the binary format.
func uleb(n uint64) []byte {
	var b []byte
	for {
		c := byte(n & 0x7f)
		n >>= 7
		if n != 0 {
			c |= 0x80
		}
		b = append(b, c)
		if n == 0 {
			return b
		}
	}
}

func sleb(n int64) []byte {
	var b []byte
	for {
		c := byte(n & 0x7f)
		n >>= 7
		done := (n == 0 && c&0x40 == 0) || (n == -1 && c&0x40 != 0)
		if !done {
			c |= 0x80
		}
		b = append(b, c)
		if done {
			return b
		}
	}
}

func wasmName(s string) []byte { return append(uleb(uint64(len(s))), s...) }

func wasmVec(items [][]byte) []byte {
	b := uleb(uint64(len(items)))
	for _, it := range items {
		b = append(b, it...)
	}
	return b
}

func concat(parts ...[]byte) []byte {
	var b []byte
	for _, p := range parts {
		b = append(b, p...)
	}
	return b
}

// Value types, import/export kinds and the instructions used below.
const (
	i32 = 0x7f

	kindFunc   = 0x00
	kindMemory = 0x02

	opUnreachable = 0x00
	opLoop        = 0x03
	opEnd         = 0x0b
	opBr          = 0x0c
	opBrIf        = 0x0d
	opCall        = 0x10
	opI32Const    = 0x41
	opI32Ne       = 0x47
	opMemoryGrow  = 0x40
	blockEmpty    = 0x40
)

func funcType(params, results []byte) []byte {
	return concat([]byte{0x60}, uleb(uint64(len(params))), params, uleb(uint64(len(results))), results)
}

func importFunc(module, name string, typeIndex uint64) []byte {
	return concat(wasmName(module), wasmName(name), []byte{kindFunc}, uleb(typeIndex))
}

func export(name string, kind byte, index uint64) []byte {
	return concat(wasmName(name), []byte{kind}, uleb(index))
}

// memoryLimits is a memory type: min pages, and max pages when max >= 0.
func memoryLimits(min uint64, max int64) []byte {
	if max < 0 {
		return concat([]byte{0x00}, uleb(min))
	}
	return concat([]byte{0x01}, uleb(min), uleb(uint64(max)))
}

// wasmModule holds the sections of a module; bodies are the instructions of
// each defined function, without locals or the final end.
type wasmModule struct {
	types   [][]byte
	imports [][]byte
	funcs   []uint64 // type index of each defined function
	memory  []byte   // limits of the one memory; nil for none
	exports [][]byte
	bodies  [][]byte
}

func (m wasmModule) bytes() []byte {
	section := func(id byte, content []byte) []byte {
		return concat([]byte{id}, uleb(uint64(len(content))), content)
	}
	out := []byte{0x00, 'a', 's', 'm', 0x01, 0x00, 0x00, 0x00}
	out = append(out, section(1, wasmVec(m.types))...)
	if len(m.imports) > 0 {
		out = append(out, section(2, wasmVec(m.imports))...)
	}
	var funcs [][]byte
	for _, t := range m.funcs {
		funcs = append(funcs, uleb(t))
	}
	out = append(out, section(3, wasmVec(funcs))...)
	if m.memory != nil {
		out = append(out, section(5, wasmVec([][]byte{m.memory}))...)
	}
	out = append(out, section(7, wasmVec(m.exports))...)
	var code [][]byte
	for _, body := range m.bodies {
		fn := concat([]byte{0x00}, body, []byte{opEnd}) // no locals
		code = append(code, concat(uleb(uint64(len(fn))), fn))
	}
	out = append(out, section(10, wasmVec(code))...)
	return out
}

var voidType = funcType(nil, nil)

// spinModule loops with a bare `loop br 0`: no call, no host function, so
// nothing inside wazero ever gets a chance to stop it.
func spinModule() []byte {
	return wasmModule{
		types:   [][]byte{voidType},
		funcs:   []uint64{0},
		exports: [][]byte{export("_start", kindFunc, 0)},
		bodies:  [][]byte{{opLoop, blockEmpty, opBr, 0x00, opEnd}},
	}.bytes()
}

// recurseModule calls a function that calls itself for ever.
func recurseModule() []byte {
	return wasmModule{
		types:   [][]byte{voidType},
		funcs:   []uint64{0, 0},
		exports: [][]byte{export("_start", kindFunc, 0)},
		bodies:  [][]byte{{opCall, 0x01}, {opCall, 0x01}},
	}.bytes()
}

// growModule grows its memory a page at a time until memory.grow fails, then
// traps, as a C program that does not check malloc would. maxPages is the
// maximum the module declares, -1 for none.
func growModule(maxPages int64) []byte {
	return growThen(maxPages, []byte{opUnreachable})
}

// growSpinModule grows its memory as far as it can, then spins with it.
func growSpinModule() []byte {
	return growThen(-1, []byte{opLoop, blockEmpty, opBr, 0x00, opEnd})
}

func growThen(maxPages int64, then []byte) []byte {
	body := concat(
		[]byte{opLoop, blockEmpty},
		[]byte{opI32Const}, sleb(1), []byte{opMemoryGrow, 0x00},
		[]byte{opI32Const}, sleb(-1), []byte{opI32Ne},
		[]byte{opBrIf, 0x00, opEnd},
		then,
	)
	return wasmModule{
		types:   [][]byte{voidType},
		funcs:   []uint64{0},
		memory:  memoryLimits(1, maxPages),
		exports: [][]byte{export("_start", kindFunc, 0), export("memory", kindMemory, 0)},
		bodies:  [][]byte{body},
	}.bytes()
}

// bigMemoryModule asks for more memory at start than any limit in the tests.
func bigMemoryModule(pages uint64) []byte {
	return wasmModule{
		types:   [][]byte{voidType},
		funcs:   []uint64{0},
		memory:  memoryLimits(pages, -1),
		exports: [][]byte{export("_start", kindFunc, 0)},
		bodies:  [][]byte{nil},
	}.bytes()
}

// importModule imports a function nobody provides and calls it.
func importModule(module, name string) []byte {
	return wasmModule{
		types:   [][]byte{voidType},
		imports: [][]byte{importFunc(module, name, 0)},
		funcs:   []uint64{0},
		exports: [][]byte{export("_start", kindFunc, 1)},
		bodies:  [][]byte{{opCall, 0x00}},
	}.bytes()
}

// importMemoryModule expects its memory from outside.
func importMemoryModule() []byte {
	return wasmModule{
		types:   [][]byte{voidType},
		imports: [][]byte{concat(wasmName("env"), wasmName("memory"), []byte{kindMemory}, memoryLimits(1, -1))},
		funcs:   []uint64{0},
		exports: [][]byte{export("_start", kindFunc, 0)},
		bodies:  [][]byte{nil},
	}.bytes()
}

// noStartModule is a reactor, not a command.
func noStartModule() []byte {
	return wasmModule{
		types:   [][]byte{voidType},
		funcs:   []uint64{0},
		exports: [][]byte{export("main", kindFunc, 0)},
		bodies:  [][]byte{nil},
	}.bytes()
}

// exitModule calls proc_exit with code.
func exitModule(code uint32) []byte {
	return wasmModule{
		types:   [][]byte{funcType([]byte{i32}, nil), voidType},
		imports: [][]byte{importFunc("wasi_snapshot_preview1", "proc_exit", 0)},
		funcs:   []uint64{1},
		exports: [][]byte{export("_start", kindFunc, 1)},
		bodies:  [][]byte{concat([]byte{opI32Const}, sleb(int64(int32(code))), []byte{opCall, 0x00})},
	}.bytes()
}
