package runner

import (
	"context"
	"fmt"
	"io"
	"slices"
	"sort"
	"strings"

	"github.com/tetratelabs/wazero/api"
	experimentalsys "github.com/tetratelabs/wazero/experimental/sys"
)

// The runner hides the WebAssembly engine behind engine, compiled and
// instance (DESIGN.md §6): the sandbox, the reactor loop and the checkpoints
// are written once against them. wazero (engine_wazero.go) is in every
// build; wasmtime (engine_wasmtime.go) only in a worker built with cgo and
// the wasmtime tag, where it is the engine a task runs on unless the spec
// asks for another. Whatever the engine, a module sees the same WASI, clocks,
// random stream, directory and limits, so a task computes the same bytes and
// a checkpoint moves between engines.
type engine interface {
	// compile compiles a module, caching the machine code in cacheDir when
	// it is not "". An error means the module is not valid WebAssembly, or
	// uses what the engine does not support.
	compile(ctx context.Context, wasm []byte, cacheDir string) (compiled, error)
	close(ctx context.Context)
}

// compiled is a module ready to be instantiated, any number of times.
type compiled interface {
	// exportedFunc gives the signature of an exported function.
	exportedFunc(name string) (params, results []api.ValueType, ok bool)
	instantiate(ctx context.Context, g *guest) (instance, error)
	close(ctx context.Context)
}

// guest is what an instance is given.
type guest struct {
	args           []string
	stdin          io.Reader // nil: empty
	stdout, stderr io.Writer
	fs             experimentalsys.FS
	host           *virtualHost
	memoryLimit    uint64
}

// instance is a running module. Its calls return nil, a *sys.ExitError, a
// *stopError, a *trapError, or an error that says what else went wrong.
type instance interface {
	call(ctx context.Context, name string) ([]uint64, error)
	hasFunc(name string) bool
	// memory is the module's linear memory, valid until the next call or
	// growMemory; nil when it has none.
	memory() []byte
	growMemory(pages uint32) bool
	// global reads an exported global; setGlobal writes a mutable one.
	global(name string) (typ api.ValueType, bits uint64, ok bool)
	setGlobal(name string, bits uint64) bool
	// memoryRefused says whether the module asked for memory past its
	// limit, and how much, in the words of a Result's reason.
	memoryRefused() (string, bool)
	close(ctx context.Context)
}

// trapError is a trap, in the words wazero uses for each kind, so that a
// module that crashes fails with the same reason on every engine.
type trapError struct {
	stackOverflow bool
	msg           string // e.g. "unreachable", "out of bounds memory access"
}

func (e *trapError) Error() string {
	if e.stackOverflow {
		return "stack overflow"
	}
	return "wasm error: " + e.msg
}

// Engine names, as Spec.Engine and Result.Engine give them.
const (
	EngineWazero            = "wazero"
	EngineWazeroInterpreter = "wazero-interpreter"
	EngineWasmtime          = "wasmtime"
)

// engines are the engines built into this binary, by name; faster ones
// register themselves from files with build tags.
var engines = map[string]func() engine{
	EngineWazero:            func() engine { return newWazero(false) },
	EngineWazeroInterpreter: func() engine { return newWazero(true) },
}

// preferred lists engines from fastest to slowest: the first one built in is
// a task's engine unless its spec names one.
var preferred = []string{EngineWasmtime, EngineWazero}

// Engines lists the engines this binary can run modules on, the one tasks
// run on by default first.
func Engines() []string {
	var names []string
	for _, n := range preferred {
		if engines[n] != nil {
			names = append(names, n)
		}
	}
	var rest []string
	for n := range engines {
		if !slices.Contains(names, n) {
			rest = append(rest, n)
		}
	}
	sort.Strings(rest)
	return append(names, rest...)
}

// DefaultEngine is the engine a task runs on when its spec names none.
func DefaultEngine() string { return Engines()[0] }

// pickEngine returns the engine a spec asks for.
func pickEngine(spec Spec) (string, error) {
	name := spec.Engine
	if name == "" && spec.Checkpoint != nil && spec.Checkpoint.Interpreter {
		name = EngineWazeroInterpreter
	}
	if name == "" {
		name = DefaultEngine()
	}
	if engines[name] == nil {
		return "", fmt.Errorf("this worker has no engine %q (it has %s)", name, strings.Join(Engines(), ", "))
	}
	return name, nil
}
