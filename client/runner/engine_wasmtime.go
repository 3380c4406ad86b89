//go:build wasmtime && cgo

package runner

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"strings"

	wasmtime "github.com/bytecodealliance/wasmtime-go/v39"
	"github.com/tetratelabs/wazero/api"
	"github.com/tetratelabs/wazero/sys"

	"github.com/momonga-project/momonga/client/runner/wasi"
	"github.com/momonga-project/momonga/internal/atomicfile"
)

// wasmtimeEngine runs modules with wasmtime's Cranelift compiler, through its
// C library (cgo): about twice wazero's speed on CPU-bound code. It is built
// only into the worker executable (`momonga-worker`, built with the wasmtime
// tag), so that the daemon stays pure Go. The module's WASI is package wasi
// over the runner's file system, clocks and random stream, not wasmtime's
// own, which has neither virtual clocks nor a seeded random stream nor the
// runner's file system.
type wasmtimeEngine struct {
	engine *wasmtime.Engine
}

// wasmtimeVersion names the library in compilation cache entries: machine
// code compiled by one version is not loaded by another.
const wasmtimeVersion = "wasmtime-go-v39.0.1"

func init() {
	engines[EngineWasmtime] = newWasmtime
}

// maxWasmStack bounds the native stack wasm code may use. wasmtime runs
// wasm on the calling thread's stack, which for the threads of a Go program
// built with cgo is 8 MiB (glibc's default, from RLIMIT_STACK); the rest is
// left for the host functions and the Go runtime's own calls.
const maxWasmStack = 6 << 20

func newWasmtime() engine {
	cfg := wasmtime.NewConfig()
	// Only what wazero also runs, so that a module accepted here can move
	// to a host without this engine, checkpoints and all; and nothing whose
	// results may differ between hosts.
	cfg.SetWasmThreads(false)
	cfg.SetWasmRelaxedSIMD(false)
	cfg.SetWasmMemory64(false)
	cfg.SetWasmMultiMemory(false)
	cfg.SetWasmTailCall(false)
	cfg.SetWasmGC(false)
	cfg.SetWasmFunctionReferences(false)
	cfg.SetWasmWideArithmetic(false)
	cfg.SetMaxWasmStack(maxWasmStack)
	return &wasmtimeEngine{engine: wasmtime.NewEngineWithConfig(cfg)}
}

func (e *wasmtimeEngine) close(context.Context) { e.engine.Close() }

// compile compiles wasm, or loads what an earlier compilation of the same
// bytes by the same version left in cacheDir. The cache is the client's own
// directory: wasmtime trusts the machine code it loads.
func (e *wasmtimeEngine) compile(_ context.Context, wasm []byte, cacheDir string) (compiled, error) {
	var cached string
	if cacheDir != "" {
		sum := sha256.Sum256(wasm)
		cached = filepath.Join(cacheDir, fmt.Sprintf("%s-%s-%s-%s.cwasm", wasmtimeVersion, runtime.GOOS, runtime.GOARCH, hex.EncodeToString(sum[:])))
		if m, err := wasmtime.NewModuleDeserializeFile(e.engine, cached); err == nil {
			return newWasmtimeCompiled(e.engine, m), nil
		}
	}
	m, err := wasmtime.NewModule(e.engine, wasm)
	if err != nil {
		msg, _, _ := strings.Cut(err.Error(), "\n")
		return nil, errors.New(msg)
	}
	if cached != "" {
		// A cache that cannot be written costs only compilation time.
		if b, err := m.Serialize(); err == nil && os.MkdirAll(cacheDir, 0o700) == nil {
			_ = atomicfile.Write(cached, b, 0o600)
		}
	}
	return newWasmtimeCompiled(e.engine, m), nil
}

type wasmtimeCompiled struct {
	engine *wasmtime.Engine
	module *wasmtime.Module
	funcs  map[string][2][]api.ValueType
}

func newWasmtimeCompiled(engine *wasmtime.Engine, m *wasmtime.Module) *wasmtimeCompiled {
	c := &wasmtimeCompiled{engine: engine, module: m, funcs: map[string][2][]api.ValueType{}}
	for _, ex := range m.Exports() {
		if ft := ex.Type().FuncType(); ft != nil {
			c.funcs[ex.Name()] = [2][]api.ValueType{valueTypes(ft.Params()), valueTypes(ft.Results())}
		}
	}
	return c
}

// valueTypes maps wasmtime's value types to wazero's encoding, which is the
// binary format's and the one checkpoints record.
func valueTypes(tys []*wasmtime.ValType) []api.ValueType {
	out := make([]api.ValueType, len(tys))
	for i, t := range tys {
		out[i] = valueType(t.Kind())
	}
	return out
}

func valueType(k wasmtime.ValKind) api.ValueType {
	switch k {
	case wasmtime.KindI32:
		return api.ValueTypeI32
	case wasmtime.KindI64:
		return api.ValueTypeI64
	case wasmtime.KindF32:
		return api.ValueTypeF32
	case wasmtime.KindF64:
		return api.ValueTypeF64
	case wasmtime.KindExternref:
		return api.ValueTypeExternref
	}
	return valueTypeFuncref
}

// valueTypeFuncref is funcref's code in the binary format, which wazero's api
// does not name.
const valueTypeFuncref api.ValueType = 0x70

func (c *wasmtimeCompiled) close(context.Context) { c.module.Close() }

func (c *wasmtimeCompiled) exportedFunc(name string) ([]api.ValueType, []api.ValueType, bool) {
	f, ok := c.funcs[name]
	return f[0], f[1], ok
}

func (c *wasmtimeCompiled) instantiate(_ context.Context, g *guest) (instance, error) {
	store := wasmtime.NewStore(c.engine)
	// The memory limit: a memory.grow past it fails, as under wazero's
	// memoryCap. A store holds one instance, so the limit is the module's.
	store.Limiter(int64(min(g.memoryLimit, math.MaxInt64)), -1, -1, -1, -1)
	i := &wasmtimeInstance{store: store, limit: g.memoryLimit}
	i.stderr, _ = g.stderr.(*stderrCapture)
	i.sys = wasi.New(wasi.Config{
		Args: g.args, Stdin: g.stdin, Stdout: g.stdout, Stderr: g.stderr, FS: g.fs,
		Walltime: g.host.walltime, Nanotime: g.host.nanotime, Resolution: uint64(clockResolution),
		Random: g.host.random,
	})
	linker := wasmtime.NewLinker(c.engine)
	defer linker.Close()
	for _, f := range wasi.Functions() {
		if err := linker.FuncNew(wasi.ModuleName, f.Name, wasmtimeFuncType(f), i.hostFunc(f)); err != nil {
			i.sys.Close()
			store.Close()
			return nil, fmt.Errorf("define %s: %w", f.Name, err)
		}
	}
	inst, err := linker.Instantiate(store, c.module)
	if err != nil {
		i.sys.Close()
		store.Close()
		return nil, wasmtimeError(err)
	}
	i.inst = inst
	if ex := inst.GetExport(store, "memory"); ex != nil {
		i.mem = ex.Memory()
	}
	return i, nil
}

func wasmtimeFuncType(f wasi.Function) *wasmtime.FuncType {
	params := make([]*wasmtime.ValType, len(f.Params))
	for i, p := range f.Params {
		if p == api.ValueTypeI64 {
			params[i] = wasmtime.NewValType(wasmtime.KindI64)
		} else {
			params[i] = wasmtime.NewValType(wasmtime.KindI32)
		}
	}
	var results []*wasmtime.ValType
	if !f.NoResult {
		results = []*wasmtime.ValType{wasmtime.NewValType(wasmtime.KindI32)}
	}
	return wasmtime.NewFuncType(params, results)
}

type wasmtimeInstance struct {
	store *wasmtime.Store
	inst  *wasmtime.Instance
	mem   *wasmtime.Memory
	sys   *wasi.System
	limit uint64
	// stderr is what the module wrote there, which tells when a Go
	// program's runtime found no more memory.
	stderr *stderrCapture
}

// hostFunc binds a WASI function to this instance. A panic in it (proc_exit,
// the output cap, a stop after a checkpoint) unwinds the module and comes out
// of call, where wasmtime-go raises it again.
func (i *wasmtimeInstance) hostFunc(f wasi.Function) func(*wasmtime.Caller, []wasmtime.Val) ([]wasmtime.Val, *wasmtime.Trap) {
	return func(caller *wasmtime.Caller, args []wasmtime.Val) ([]wasmtime.Val, *wasmtime.Trap) {
		p := make([]uint64, len(args))
		for k, a := range args {
			if a.Kind() == wasmtime.KindI64 {
				p[k] = uint64(a.I64())
			} else {
				p[k] = uint64(uint32(a.I32()))
			}
		}
		var mem []byte
		if i.mem != nil {
			mem = i.mem.UnsafeData(caller)
		} else if ex := caller.GetExport("memory"); ex != nil && ex.Memory() != nil {
			mem = ex.Memory().UnsafeData(caller) // a start function, before instantiation returned
		}
		errno := f.Call(i.sys, mem, p)
		if f.NoResult {
			return nil, nil
		}
		return []wasmtime.Val{wasmtime.ValI32(int32(errno))}, nil
	}
}

func (i *wasmtimeInstance) call(_ context.Context, name string) (res []uint64, err error) {
	f := i.inst.GetFunc(i.store, name)
	if f == nil {
		return nil, errors.New("the module has no function " + name)
	}
	defer func() {
		if r := recover(); r != nil {
			var exit *sys.ExitError
			var stop *stopError
			if e, ok := r.(error); ok && (errors.As(e, &exit) || errors.As(e, &stop)) {
				res, err = nil, e
				return
			}
			panic(r)
		}
	}()
	out, err := f.Call(i.store)
	if err != nil {
		return nil, wasmtimeError(err)
	}
	switch v := out.(type) {
	case nil:
		return nil, nil
	case int32:
		return []uint64{uint64(uint32(v))}, nil
	case int64:
		return []uint64{uint64(v)}, nil
	case float32:
		return []uint64{uint64(math.Float32bits(v))}, nil
	case float64:
		return []uint64{math.Float64bits(v)}, nil
	}
	return nil, fmt.Errorf("%s returned %T, which the runner does not take", name, out)
}

// trapWords are wazero's words for each kind of trap.
var trapWords = map[wasmtime.TrapCode]string{
	wasmtime.MemoryOutOfBounds:      "out of bounds memory access",
	wasmtime.HeapMisaligned:         "unaligned atomic",
	wasmtime.TableOutOfBounds:       "invalid table access",
	wasmtime.IndirectCallToNull:     "invalid table access",
	wasmtime.BadSignature:           "indirect call type mismatch",
	wasmtime.IntegerOverflow:        "integer overflow",
	wasmtime.IntegerDivisionByZero:  "integer divide by zero",
	wasmtime.BadConversionToInteger: "invalid conversion to integer",
	wasmtime.UnreachableCodeReached: "unreachable",
}

func wasmtimeError(err error) error {
	var trap *wasmtime.Trap
	if !errors.As(err, &trap) {
		return err
	}
	code := trap.Code()
	if code == nil {
		msg, _, _ := strings.Cut(trap.Message(), "\n")
		return errors.New(msg)
	}
	if *code == wasmtime.StackOverflow {
		return &trapError{stackOverflow: true}
	}
	if words, ok := trapWords[*code]; ok {
		return &trapError{msg: words}
	}
	msg, _, _ := strings.Cut(trap.Message(), "\n")
	return &trapError{msg: msg}
}

func (i *wasmtimeInstance) hasFunc(name string) bool { return i.inst.GetFunc(i.store, name) != nil }

func (i *wasmtimeInstance) memory() []byte {
	if i.mem == nil {
		return nil
	}
	return i.mem.UnsafeData(i.store)
}

func (i *wasmtimeInstance) growMemory(pages uint32) bool {
	if i.mem == nil {
		return false
	}
	_, err := i.mem.Grow(i.store, uint64(pages))
	return err == nil
}

func (i *wasmtimeInstance) global(name string) (api.ValueType, uint64, bool) {
	ex := i.inst.GetExport(i.store, name)
	if ex == nil || ex.Global() == nil {
		return 0, 0, false
	}
	g := ex.Global()
	v := g.Get(i.store)
	switch v.Kind() {
	case wasmtime.KindI32:
		return api.ValueTypeI32, uint64(uint32(v.I32())), true
	case wasmtime.KindI64:
		return api.ValueTypeI64, uint64(v.I64()), true
	case wasmtime.KindF32:
		return api.ValueTypeF32, uint64(math.Float32bits(v.F32())), true
	case wasmtime.KindF64:
		return api.ValueTypeF64, math.Float64bits(v.F64()), true
	}
	return valueType(v.Kind()), 0, false
}

func (i *wasmtimeInstance) setGlobal(name string, bits uint64) bool {
	ex := i.inst.GetExport(i.store, name)
	if ex == nil || ex.Global() == nil {
		return false
	}
	g := ex.Global()
	var v wasmtime.Val
	switch g.Type(i.store).Content().Kind() {
	case wasmtime.KindI32:
		v = wasmtime.ValI32(int32(uint32(bits)))
	case wasmtime.KindI64:
		v = wasmtime.ValI64(int64(bits))
	case wasmtime.KindF32:
		v = wasmtime.ValF32(math.Float32frombits(uint32(bits)))
	case wasmtime.KindF64:
		v = wasmtime.ValF64(math.Float64frombits(bits))
	default:
		return false
	}
	return g.Set(i.store, v) == nil
}

// memoryRefused says whether the module met its memory limit. wasmtime's
// limiter does not tell what a refused memory.grow asked for, so this is
// judged from where the memory ended, within one growth of the limit (a Go
// program's runtime grows its heap 4 MiB at a time), or from a Go runtime
// saying it is out of memory, which on wasm means a memory.grow failed.
func (i *wasmtimeInstance) memoryRefused() (string, bool) {
	if i.mem == nil || i.limit == 0 {
		return "", false
	}
	size := uint64(i.mem.DataSize(i.store))
	const step = 4 << 20
	goOOM := i.stderr != nil && strings.Contains(i.stderr.String(), "fatal error: out of memory")
	if size+step <= i.limit && !goOOM {
		return "", false
	}
	return fmt.Sprintf("memory limit of %s reached (it had %s)", formatBytes(int64(i.limit)), formatBytes(int64(size))), true
}

func (i *wasmtimeInstance) close(context.Context) {
	i.sys.Close()
	i.store.Close()
}
