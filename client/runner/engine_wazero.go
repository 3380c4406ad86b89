package runner

import (
	"context"
	"errors"
	"math"
	"strings"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"
	"github.com/tetratelabs/wazero/experimental"
	"github.com/tetratelabs/wazero/experimental/sysfs"
	"github.com/tetratelabs/wazero/imports/wasi_snapshot_preview1"
	"github.com/tetratelabs/wazero/sys"
)

// wazeroEngine runs modules with wazero: its compiler where it has one, or
// its interpreter; pure Go, on every platform. The module's WASI is wazero's
// own, given the runner's file system, clocks and random stream.
type wazeroEngine struct {
	interpreter bool
}

func newWazero(interpreter bool) engine { return &wazeroEngine{interpreter: interpreter} }

func (e *wazeroEngine) close(context.Context) {}

func (e *wazeroEngine) compile(ctx context.Context, wasm []byte, cacheDir string) (compiled, error) {
	cfg := wazero.NewRuntimeConfig()
	if e.interpreter {
		cfg = wazero.NewRuntimeConfigInterpreter()
	}
	var cache wazero.CompilationCache
	if cacheDir != "" {
		// A cache that cannot be opened costs only compilation time.
		if c, err := wazero.NewCompilationCacheWithDir(cacheDir); err == nil {
			cache = c
			cfg = cfg.WithCompilationCache(cache)
		}
	}
	c := &wazeroCompiled{rt: wazero.NewRuntimeWithConfig(ctx, cfg), cache: cache}
	if _, err := wasi_snapshot_preview1.Instantiate(ctx, c.rt); err != nil {
		c.close(ctx)
		return nil, err
	}
	mod, err := c.rt.CompileModule(ctx, wasm)
	if err != nil {
		c.close(ctx)
		return nil, err
	}
	c.mod = mod
	return c, nil
}

type wazeroCompiled struct {
	rt    wazero.Runtime
	cache wazero.CompilationCache
	mod   wazero.CompiledModule
}

func (c *wazeroCompiled) close(ctx context.Context) {
	if c.mod != nil {
		c.mod.Close(ctx)
	}
	c.rt.Close(ctx)
	if c.cache != nil {
		c.cache.Close(ctx)
	}
}

func (c *wazeroCompiled) exportedFunc(name string) ([]api.ValueType, []api.ValueType, bool) {
	f := c.mod.ExportedFunctions()[name]
	if f == nil {
		return nil, nil, false
	}
	return f.ParamTypes(), f.ResultTypes(), true
}

func (c *wazeroCompiled) instantiate(ctx context.Context, g *guest) (instance, error) {
	cfg := wazero.NewModuleConfig().
		WithArgs(g.args...).
		WithStdout(g.stdout).
		WithStderr(g.stderr).
		WithFSConfig(wazero.NewFSConfig().(sysfs.FSConfig).WithSysFSMount(g.fs, "/")).
		WithWalltime(g.host.walltime, clockResolution).
		WithNanotime(g.host.nanotime, clockResolution).
		WithRandSource(g.host.random).
		// Start functions are called by the runner rather than during
		// instantiation, so that a failure to link is told apart from a
		// failure to run, and so that a restored reactor skips them.
		WithStartFunctions()
	if g.stdin != nil {
		cfg = cfg.WithStdin(g.stdin)
	}
	mem := &memoryCap{limit: g.memoryLimit}
	mod, err := c.rt.InstantiateModule(experimental.WithMemoryAllocator(ctx, mem), c.mod, cfg)
	if err != nil {
		return nil, err
	}
	return &wazeroInstance{mod: mod, mem: mem}, nil
}

type wazeroInstance struct {
	mod api.Module
	mem *memoryCap
}

func (i *wazeroInstance) call(ctx context.Context, name string) ([]uint64, error) {
	f := i.mod.ExportedFunction(name)
	if f == nil {
		return nil, errors.New("the module has no function " + name)
	}
	res, err := f.Call(ctx)
	return res, wazeroError(err)
}

// wazeroError turns wazero's traps into trapErrors; other errors, exits and
// stops pass as they are.
func wazeroError(err error) error {
	var exit *sys.ExitError
	var stop *stopError
	if err == nil || errors.As(err, &exit) || errors.As(err, &stop) {
		return err
	}
	msg, _, _ := strings.Cut(err.Error(), "\n")
	switch {
	case strings.HasSuffix(msg, "stack overflow"): // the compiler and the interpreter word it differently
		return &trapError{stackOverflow: true}
	case strings.HasPrefix(msg, "wasm error: "):
		return &trapError{msg: strings.TrimPrefix(msg, "wasm error: ")}
	}
	return err
}

func (i *wazeroInstance) hasFunc(name string) bool { return i.mod.ExportedFunction(name) != nil }

func (i *wazeroInstance) memory() []byte {
	mem := i.mod.Memory()
	if mem == nil {
		return nil
	}
	view, _ := mem.Read(0, mem.Size())
	return view
}

func (i *wazeroInstance) growMemory(pages uint32) bool {
	mem := i.mod.Memory()
	if mem == nil {
		return false
	}
	_, ok := mem.Grow(pages)
	return ok && uint64(mem.Size()) <= math.MaxUint32
}

func (i *wazeroInstance) global(name string) (api.ValueType, uint64, bool) {
	g := i.mod.ExportedGlobal(name)
	if g == nil {
		return 0, 0, false
	}
	return g.Type(), g.Get(), true
}

func (i *wazeroInstance) setGlobal(name string, bits uint64) bool {
	g, ok := i.mod.ExportedGlobal(name).(api.MutableGlobal)
	if ok {
		g.Set(bits)
	}
	return ok
}

func (i *wazeroInstance) memoryRefused() (string, bool) { return i.mem.refused() }

func (i *wazeroInstance) close(ctx context.Context) { i.mod.Close(ctx) }
