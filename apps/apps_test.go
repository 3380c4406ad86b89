package apps

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"math/big"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"

	"github.com/momonga-project/momonga/workunits/sdk"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/imports/wasi_snapshot_preview1"
	"github.com/tetratelabs/wazero/sys"
)

// TestModulesAreReproducible rebuilds each module the way go:generate does
// and checks that the committed file has the same sha-256.
func TestModulesAreReproducible(t *testing.T) {
	goTool := requireGo(t)
	version, err := exec.Command(goTool, "env", "GOVERSION").Output()
	if err != nil {
		t.Fatalf("go env GOVERSION: %v", err)
	}
	for _, app := range []string{"primes", "mandel", "mandelr", "mandelc", "matinv", "kernels"} {
		t.Run(app, func(t *testing.T) {
			t.Parallel()
			out := filepath.Join(t.TempDir(), app+".wasm")
			args := []string{"run", "./internal/buildwasm", out, "./" + app}
			switch app {
			case "mandelr":
				args = []string{"run", "./internal/buildwasm", "-reactor", out, "./" + app}
			case "mandelc":
				if _, err := exec.LookPath("clang"); err != nil {
					t.Skip("clang is needed to build mandelc.wasm (Debian: clang lld wasi-libc libclang-rt-14-dev-wasm32)")
				}
				args = []string{"run", "./internal/buildwasm", "-c", out, "mandelc/mandel.c"}
			case "kernels":
				if _, err := exec.LookPath("clang"); err != nil {
					t.Skip("clang is needed to build kernels.wasm (Debian: clang lld wasi-libc libclang-rt-14-dev-wasm32)")
				}
				args = []string{"run", "./internal/buildwasm", "-ccommand", "-simd", out, "kernels/kernels.c"}
			}
			cmd := exec.Command(goTool, args...)
			if msg, err := cmd.CombinedOutput(); err != nil {
				t.Fatalf("build %s: %v\n%s", app, err, msg)
			}
			committed, err := os.ReadFile(app + ".wasm")
			if err != nil {
				t.Fatal(err)
			}
			rebuilt, err := os.ReadFile(out)
			if err != nil {
				t.Fatal(err)
			}
			if sha256.Sum256(committed) != sha256.Sum256(rebuilt) {
				t.Errorf("%s.wasm (sha-256 %x) differs from a fresh build with %s (%x): "+
					"run `go generate ./apps/` with the project's Go toolchain and commit the result",
					app, sha256.Sum256(committed), strings.TrimSpace(string(version)), sha256.Sum256(rebuilt))
			}
		})
	}
}

func TestPrimesNative(t *testing.T) {
	primes := buildNative(t, "./primes")
	count := func(t *testing.T, a, b uint64) uint64 {
		t.Helper()
		out, errOut, code := run(t, primes, "", strconv.FormatUint(a, 10), strconv.FormatUint(b, 10))
		if code != 0 {
			t.Fatalf("primes %d %d: exit %d: %s", a, b, code, errOut)
		}
		return parseCount(t, out)
	}

	t.Run("known counts", func(t *testing.T) {
		for _, c := range []struct{ a, b, want uint64 }{
			{0, 0, 0}, {0, 1, 0}, {0, 2, 0}, {0, 3, 1}, {1, 2, 0}, {1, 3, 1}, {2, 3, 1}, {2, 4, 2},
			{3, 4, 1}, {4, 5, 0}, {8, 9, 0}, {9, 10, 0}, {25, 26, 0}, {97, 98, 1}, {98, 99, 0},
			{0, 100, 25}, {0, 1_000_000, 78_498}, {0, 10_000_000, 664_579}, {0, 100_000_000, 5_761_455},
			{999_999_999_989, 999_999_999_990, 1}, // the largest prime below 10^12
			{999_999_999_990, 1_000_000_000_000, 0},
		} {
			if got := count(t, c.a, c.b); got != c.want {
				t.Errorf("primes %d %d = %d, want %d", c.a, c.b, got, c.want)
			}
		}
	})

	t.Run("splits sum to the whole", func(t *testing.T) {
		cuts := []uint64{0, 1, 2, 3, 4, 1000, 1 << 20, 1<<20 + 1, 2_097_151, 5_000_000, 9_999_991, 10_000_000}
		var sum uint64
		for i := 1; i < len(cuts); i++ {
			sum += count(t, cuts[i-1], cuts[i])
		}
		if sum != 664_579 {
			t.Errorf("the pieces of [0, 10^7) hold %d primes, want 664579", sum)
		}
	})

	t.Run("near 10^12", func(t *testing.T) {
		const b = 1_000_000_000_000
		const a = b - 30_000
		var want uint64
		for n := uint64(a); n < b; n++ {
			if new(big.Int).SetUint64(n).ProbablyPrime(0) { // exact below 2^64
				want++
			}
		}
		if got := count(t, a, b); got != want {
			t.Errorf("primes %d %d = %d, want %d", uint64(a), uint64(b), got, want)
		}
	})

	t.Run("stdin", func(t *testing.T) {
		out, errOut, code := run(t, primes, " 0\n\t1000000 \n")
		if code != 0 || out != "78498\n" {
			t.Errorf("primes < '0 1000000' = %q, exit %d, stderr %q; want \"78498\\n\", exit 0", out, code, errOut)
		}
	})

	t.Run("bad input", func(t *testing.T) {
		for _, c := range []struct {
			stdin string
			args  []string
		}{
			{args: []string{"5"}}, {args: []string{"1", "2", "3"}}, {args: []string{"-1", "5"}},
			{args: []string{"x", "5"}}, {args: []string{"5", "3"}}, {args: []string{"0x10", "20"}},
			{args: []string{"1.5", "20"}}, {args: []string{"0", "100000000000001"}},
			{args: []string{"0", "18446744073709551616"}}, {args: []string{"", "5"}},
			{stdin: ""}, {stdin: "7"}, {stdin: "1 2 3"}, {stdin: "a b"},
			{stdin: "1 " + strings.Repeat(" ", 5000) + "2"},
		} {
			out, errOut, code := run(t, primes, c.stdin, c.args...)
			if code != 2 || out != "" || errOut == "" {
				t.Errorf("primes %q < %.20q: exit %d, stdout %q, stderr %q; want exit 2 and a message on stderr only",
					c.args, c.stdin, code, out, errOut)
			}
		}
	})
}

func TestMandelNative(t *testing.T) {
	mandel := buildNative(t, "./mandel")

	t.Run("valid and repeatable", func(t *testing.T) {
		args := []string{"-0.75", "0.1", "0.5", "64", "48", "500"}
		first := runMandelIn(t, mandel, t.TempDir(), args...)
		checkPGM(t, first, 64, 48)
		if second := runMandelIn(t, mandel, t.TempDir(), args...); !bytes.Equal(first, second) {
			t.Error("two runs with the same arguments wrote different images")
		}
	})

	t.Run("progress file", func(t *testing.T) {
		dir := t.TempDir()
		runMandelIn(t, mandel, dir, "-0.5", "0", "3", "20", "7", "50")
		got, err := os.ReadFile(filepath.Join(dir, "progress"))
		if err != nil || string(got) != "1\n" {
			t.Errorf("progress file after the run = %q, %v; want \"1\\n\"", got, err)
		}
	})

	t.Run("bad arguments", func(t *testing.T) {
		for _, args := range [][]string{
			{"x"}, {"0", "0", "0"}, {"0", "0", "-1"}, {"0", "0", "NaN"}, {"Inf"}, {"0", "0", "1", "0"},
			{"0", "0", "1", "10", "10", "0"}, {"0", "0", "1", "16385"}, {"0", "0", "1", "16384", "16384"},
			{"0", "0", "1", "10", "10", "10", "10"}, {"0", "0", "1", "10.5"},
		} {
			out, errOut, code := run(t, mandel, "", args...)
			if code != 2 || out != "" || errOut == "" {
				t.Errorf("mandel %q: exit %d, stdout %d bytes, stderr %q; want exit 2 and a message on stderr only",
					args, code, len(out), errOut)
			}
		}
	})
}

// TestKernelsMatchNative checks that kernels.wasm and a native build of the
// same source with the same flags compute the same checksums, which is what
// lets `bench engines` compare their times.
func TestKernelsMatchNative(t *testing.T) {
	if _, err := exec.LookPath("clang"); err != nil {
		t.Skip("clang is needed to build the kernels natively (Debian: clang)")
	}
	src := filepath.Join(t.TempDir(), "kernels.c")
	if err := os.WriteFile(src, KernelsSource, 0o600); err != nil {
		t.Fatal(err)
	}
	exe := filepath.Join(t.TempDir(), "kernels")
	if msg, err := exec.Command("clang", append(append([]string{}, KernelsCFlags...), "-o", exe, src, "-lm")...).CombinedOutput(); err != nil {
		t.Fatalf("clang: %v\n%s", err, msg)
	}
	native, errOut, code := run(t, exe, "", "all")
	if code != 0 || strings.Count(native, "\n") != 4 {
		t.Fatalf("native kernels: exit %d, stdout %q, stderr %q", code, native, errOut)
	}
	wasm, errOut, wcode := runWasm(t, Kernels, "", "", "kernels", "all")
	if wasm != native || wcode != 0 {
		t.Errorf("kernels.wasm printed %q (exit %d, stderr %q); the native build %q", wasm, wcode, errOut, native)
	}
	if _, _, code := run(t, exe, "", "nothere"); code != 2 {
		t.Errorf("kernels nothere: exit %d, want 2", code)
	}
}

func TestPrimesWasm(t *testing.T) {
	for _, c := range []struct {
		stdin string
		args  []string
		want  string
		code  uint32
	}{
		{args: []string{"0", "10000000"}, want: "664579\n"},
		{stdin: "99000000 100000000\n", want: "54332\n"},
		{args: []string{"10", "5"}, code: 2},
	} {
		out, errOut, code := runWasm(t, Primes, "", c.stdin, append([]string{"primes"}, c.args...)...)
		if out != c.want || code != c.code {
			t.Errorf("primes.wasm %q < %q = %q, exit %d (stderr %q); want %q, exit %d",
				c.args, c.stdin, out, code, errOut, c.want, c.code)
		}
	}
}

// TestMatInvWasmMatchesNative: the module and the native build (on amd64
// also one allowed fused multiply-add) print the same checksum of the
// inverse, so replicas on any host agree byte for byte.
func TestMatInvWasmMatchesNative(t *testing.T) {
	args := []string{"120", "42"}
	native := buildNative(t, "./matinv")
	want, errOut, code := run(t, native, "", args...)
	if code != 0 || len(strings.Fields(want)) != 5 {
		t.Fatalf("matinv %q: %q, exit %d: %s", args, want, code, errOut)
	}
	out, errOut, wcode := runWasm(t, MatInv, "", "", append([]string{"matinv"}, args...)...)
	if wcode != 0 || out != want {
		t.Errorf("matinv.wasm printed %q (exit %d, %s); the native build %q", out, wcode, errOut, want)
	}
	if runtime.GOARCH == "amd64" {
		out, errOut, code := run(t, buildNative(t, "./matinv", "GOAMD64=v3"), "", args...)
		if code == 0 && out != want || code != 0 && !strings.Contains(errOut, "microarchitecture") {
			t.Errorf("the GOAMD64=v3 build printed %q (exit %d, %s)", out, code, errOut)
		}
	}
	if _, _, code := runWasm(t, MatInv, "", "", "matinv", "0", "1"); code != 2 {
		t.Errorf("matinv.wasm 0 1: exit %d, want 2", code)
	}
}

// TestMandelIsDeterministic checks that the module, the native build and, on
// amd64, a native build allowed to use fused multiply-add (GOAMD64=v3) all
// draw the same image, bit for bit, and that the module can write its
// progress file into the directory it is given.
func TestMandelIsDeterministic(t *testing.T) {
	args := []string{"-0.743643887037151", "0.131825904205330", "2e-9", "48", "32", "3000"}
	want := runMandelIn(t, buildNative(t, "./mandel"), t.TempDir(), args...)

	t.Run("wasm", func(t *testing.T) {
		dir := t.TempDir()
		out, errOut, code := runWasm(t, Mandel, dir, "", append([]string{"mandel"}, args...)...)
		if code != 0 {
			t.Fatalf("mandel.wasm: exit %d: %s", code, errOut)
		}
		if !bytes.Equal([]byte(out), want) {
			t.Error("mandel.wasm and the native build drew different images")
		}
		if got, err := os.ReadFile(filepath.Join(dir, "progress")); err != nil || string(got) != "1\n" {
			t.Errorf("progress file after the wasm run = %q, %v; want \"1\\n\"", got, err)
		}
	})

	t.Run("fma", func(t *testing.T) {
		if runtime.GOARCH != "amd64" {
			t.Skip("GOAMD64=v3 is for amd64 hosts")
		}
		mandel := buildNative(t, "./mandel", "GOAMD64=v3")
		out, errOut, code := run(t, mandel, "", args...)
		if code != 0 && strings.Contains(errOut, "microarchitecture") {
			t.Skip("this CPU cannot run GOAMD64=v3 programs")
		}
		if code != 0 || out != string(want) {
			t.Errorf("the GOAMD64=v3 build (exit %d, %s) drew a different image", code, errOut)
		}
	})
}

// TestReactorsDrawMandelsImage runs the reactor modules, Go and C, step by
// step under wazero and checks that they draw the native mandel's image and
// publish the same picture of the tile so far as it does, midway and at the
// end.
func TestReactorsDrawMandelsImage(t *testing.T) {
	args := []string{"-0.743643887037151", "0.131825904205330", "2e-9", "48", "32", "3000"}
	native := buildNative(t, "./mandel")
	nativeDir := t.TempDir()
	want := runMandelIn(t, native, nativeDir, args...)
	wantPicture, err := os.ReadFile(filepath.Join(nativeDir, sdk.PictureFile))
	if err != nil {
		t.Fatalf("native mandel published no picture: %v", err)
	}
	for name, module := range map[string][]byte{"mandelr": MandelR, "mandelc": MandelC} {
		t.Run(name, func(t *testing.T) {
			ctx := context.Background()
			r := wazero.NewRuntimeWithConfig(ctx, wazero.NewRuntimeConfig().WithCompilationCache(compilationCache))
			defer r.Close(ctx)
			wasi_snapshot_preview1.MustInstantiate(ctx, r)
			var out, errOut bytes.Buffer
			dir := t.TempDir()
			cfg := wazero.NewModuleConfig().WithArgs(append([]string{name}, args...)...).WithStdout(&out).WithStderr(&errOut).
				WithFSConfig(wazero.NewFSConfig().WithDirMount(dir, "/")).WithStartFunctions()
			mod, err := r.InstantiateWithConfig(ctx, module, cfg)
			if err != nil {
				t.Fatal(err)
			}
			if init := mod.ExportedFunction("_initialize"); init != nil {
				if _, err := init.Call(ctx); err != nil {
					t.Fatalf("_initialize: %v", err)
				}
			}
			step := mod.ExportedFunction("step")
			steps := 0
			for ; ; steps++ {
				res, err := step.Call(ctx)
				if err != nil {
					t.Fatalf("step %d: %v (%s)", steps, err, errOut.String())
				}
				if steps == 15 { // 16 of 32 rows: the picture shows the top half, the rest not yet computed
					checkHalfPicture(t, filepath.Join(dir, sdk.PictureFile), wantPicture)
				}
				if res[0] == 1 {
					break
				}
			}
			if got, err := os.ReadFile(filepath.Join(dir, sdk.PictureFile)); err != nil || !bytes.Equal(got, wantPicture) {
				t.Errorf("%s's last picture differs from mandel's (%d bytes, %v)", name, len(got), err)
			}
			if steps != 31 || !bytes.Equal(out.Bytes(), want) {
				t.Errorf("%s took %d steps and drew a different image (%d bytes, want %d)", name, steps+1, out.Len(), len(want))
			}
			if got, err := os.ReadFile(filepath.Join(dir, "progress")); err != nil || string(got) != "1\n" {
				t.Errorf("progress file = %q, %v", got, err)
			}
		})
	}
}

// BenchmarkPrimesWasm measures one work unit of the demo, [99·10^6, 10^8),
// under wazero; compiling the module is done once, outside the timing.
func BenchmarkPrimesWasm(b *testing.B) {
	benchmarkWasm(b, Primes, "primes", "99000000", "100000000")
}

// BenchmarkMandelWasm measures mandel with its default arguments under wazero.
func BenchmarkMandelWasm(b *testing.B) {
	benchmarkWasm(b, Mandel, "mandel")
}

func benchmarkWasm(b *testing.B, module []byte, args ...string) {
	ctx := context.Background()
	r := wazero.NewRuntime(ctx)
	defer r.Close(ctx)
	wasi_snapshot_preview1.MustInstantiate(ctx, r)
	compiled, err := r.CompileModule(ctx, module)
	if err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		cfg := wazero.NewModuleConfig().WithArgs(args...).WithStdout(new(bytes.Buffer)).WithName("")
		mod, err := r.InstantiateModule(ctx, compiled, cfg)
		if err != nil {
			b.Fatal(err)
		}
		mod.Close(ctx)
	}
}

// requireGo returns the go command, skipping the test where there is none.
func requireGo(t *testing.T) string {
	t.Helper()
	goTool, err := exec.LookPath("go")
	if err != nil {
		t.Skip("the go command is needed to build the apps:", err)
	}
	return goTool
}

// buildNative builds an app for the host into a temporary directory, with env
// added to the go command's environment.
func buildNative(t *testing.T, pkg string, env ...string) string {
	t.Helper()
	goTool := requireGo(t)
	exe := filepath.Join(t.TempDir(), filepath.Base(pkg))
	if runtime.GOOS == "windows" {
		exe += ".exe"
	}
	cmd := exec.Command(goTool, "build", "-o", exe, pkg)
	cmd.Env = append(os.Environ(), env...)
	if msg, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build %s: %v\n%s", pkg, err, msg)
	}
	return exe
}

// run runs exe in a temporary directory and returns its stdout, its stderr
// and its exit code.
func run(t *testing.T, exe, stdin string, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	var out, errOut bytes.Buffer
	cmd := exec.Command(exe, args...)
	cmd.Dir = t.TempDir()
	cmd.Stdin = strings.NewReader(stdin)
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	var exit *exec.ExitError
	switch {
	case errors.As(err, &exit):
		code = exit.ExitCode()
	case err != nil:
		t.Fatalf("run %s: %v", exe, err)
	}
	return out.String(), errOut.String(), code
}

func runMandelIn(t *testing.T, mandel, dir string, args ...string) []byte {
	t.Helper()
	cmd := exec.Command(mandel, args...)
	cmd.Dir = dir
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("mandel %q: %v", args, err)
	}
	return out
}

// compilationCache keeps compiled modules across the tests: compiling a Go
// module takes about a second.
var compilationCache = wazero.NewCompilationCache()

// runWasm runs a command module under wazero with args (args[0] being the
// program name) and stdin, and dir, if not empty, mounted as its root and
// working directory. It returns stdout, stderr and the exit code.
func runWasm(t *testing.T, module []byte, dir, stdin string, args ...string) (stdout, stderr string, code uint32) {
	t.Helper()
	ctx := context.Background()
	r := wazero.NewRuntimeWithConfig(ctx, wazero.NewRuntimeConfig().WithCompilationCache(compilationCache))
	defer r.Close(ctx)
	wasi_snapshot_preview1.MustInstantiate(ctx, r)
	var out, errOut bytes.Buffer
	cfg := wazero.NewModuleConfig().WithArgs(args...).
		WithStdin(strings.NewReader(stdin)).WithStdout(&out).WithStderr(&errOut)
	if dir != "" {
		cfg = cfg.WithFSConfig(wazero.NewFSConfig().WithDirMount(dir, "/"))
	}
	// InstantiateWithConfig would drop the compiled module from the cache
	// when the module exits.
	compiledModule, err := r.CompileModule(ctx, module)
	if err != nil {
		t.Fatalf("compile %s: %v", args[0], err)
	}
	mod, err := r.InstantiateModule(ctx, compiledModule, cfg)
	var exit *sys.ExitError
	switch {
	case errors.As(err, &exit):
		code = exit.ExitCode()
	case err != nil:
		t.Fatalf("run %s under wazero: %v", args[0], err)
	default:
		mod.Close(ctx)
	}
	return out.String(), errOut.String(), code
}

func parseCount(t *testing.T, out string) uint64 {
	t.Helper()
	digits, ok := strings.CutSuffix(out, "\n")
	n, err := strconv.ParseUint(digits, 10, 64)
	if !ok || err != nil || strconv.FormatUint(n, 10) != digits {
		t.Fatalf("output %q is not a count followed by a newline", out)
	}
	return n
}

func checkPGM(t *testing.T, img []byte, width, height int) {
	t.Helper()
	header := "P5\n" + strconv.Itoa(width) + " " + strconv.Itoa(height) + "\n255\n"
	if !bytes.HasPrefix(img, []byte(header)) || len(img) != len(header)+width*height {
		t.Fatalf("image of %d bytes is not a %d×%d binary PGM (header %q)", len(img), width, height, img[:min(len(img), 20)])
	}
}

// checkHalfPicture checks a picture published with half the rows done: the
// final picture's size, and its bottom half in the grey of rows to come.
func checkHalfPicture(t *testing.T, path string, final []byte) {
	t.Helper()
	got, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("no picture midway: %v", err)
	}
	header := []byte("P5\n48 32\n255\n")
	if !bytes.HasPrefix(got, header) || len(got) != len(final) {
		t.Fatalf("picture midway: %q..., %d bytes (final %d)", got[:min(len(got), 16)], len(got), len(final))
	}
	pixels := got[len(header):]
	for i, g := range pixels[len(pixels)/2:] {
		if g != 40 {
			t.Fatalf("picture midway: pixel %d of the rows to come is %d, not the grey of rows not computed", len(pixels)/2+i, g)
		}
	}
	if bytes.Equal(pixels[:len(pixels)/2], bytes.Repeat([]byte{40}, len(pixels)/2)) {
		t.Fatal("picture midway: the rows done are not drawn")
	}
}
