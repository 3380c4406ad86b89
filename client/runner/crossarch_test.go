package runner

import (
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"

	"github.com/momonga-project/momonga/apps"
	"github.com/momonga-project/momonga/workunits"
)

// TestCrossArchitectureResume is DESIGN §6's claim made concrete: a memory
// snapshot taken on one CPU resumes on another to the same bit. It builds
// the runner as a small command (testdata/ckptrun) for arm64 and s390x (a
// big-endian CPU) and runs them under qemu-user: for each, a checkpoint made
// here resumes there, and one made there resumes here, and both reach the
// output of a run straight through. In a build with wasmtime, the runner is
// also built with it for amd64 and arm64 (cgo, Debian's aarch64 cross
// compiler), and checkpoints cross between engines as well as CPUs.
func TestCrossArchitectureResume(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the runner for three CPUs; skipped with -short")
	}
	if runtime.GOOS != "linux" || runtime.GOARCH != "amd64" {
		t.Skip("the cross-architecture test runs on linux/amd64 hosts")
	}
	goCmd, err := exec.LookPath("go")
	if err != nil {
		t.Skip("the go command is needed to build the runner")
	}
	qemu := map[string]string{}
	for arch, names := range map[string][]string{"arm64": {"qemu-aarch64-static", "qemu-aarch64"}, "s390x": {"qemu-s390x-static", "qemu-s390x"}} {
		for _, n := range names {
			if p, err := exec.LookPath(n); err == nil {
				qemu[arch] = p
				break
			}
		}
		if qemu[arch] == "" {
			t.Skipf("%s is not installed: the cross-architecture test needs qemu-user (Debian: apt-get install qemu-user-static)", names[0])
		}
	}
	// A host is a CPU and an engine: "arm64" runs wazero, "arm64/wasmtime"
	// wasmtime.
	bins := map[string]string{}
	build := func(host, arch string, env ...string) {
		bins[host] = filepath.Join(t.TempDir(), "ckptrun-"+strings.ReplaceAll(host, "/", "-"))
		args := []string{"build", "-o", bins[host]}
		if strings.HasSuffix(host, "/"+EngineWasmtime) {
			args = append(args, "-tags", "wasmtime")
		}
		build := exec.Command(goCmd, append(args, "./testdata/ckptrun")...)
		build.Env = append(append(os.Environ(), "GOOS=linux", "GOARCH="+arch), env...)
		if out, err := build.CombinedOutput(); err != nil {
			t.Fatalf("build ckptrun for %s: %v\n%s", host, err, out)
		}
	}
	for _, arch := range []string{"amd64", "arm64", "s390x"} {
		build(arch, arch, "CGO_ENABLED=0")
	}
	ways := [][2]string{}
	for _, arch := range []string{"arm64", "s390x"} {
		ways = append(ways, [2]string{"amd64", arch}, [2]string{arch, "amd64"})
	}
	if engines[EngineWasmtime] != nil {
		if _, err := exec.LookPath("aarch64-linux-gnu-gcc"); err != nil {
			t.Fatal("aarch64-linux-gnu-gcc is not installed: crossing engines on arm64 needs it (Debian: apt-get install gcc-aarch64-linux-gnu)")
		}
		build("amd64/wasmtime", "amd64", "CGO_ENABLED=1")
		build("arm64/wasmtime", "arm64", "CGO_ENABLED=1", "CC=aarch64-linux-gnu-gcc")
		ways = append(ways,
			[2]string{"amd64/wasmtime", "arm64"}, [2]string{"arm64", "amd64/wasmtime"},
			[2]string{"arm64/wasmtime", "amd64"}, [2]string{"amd64", "arm64/wasmtime"},
			[2]string{"amd64/wasmtime", "s390x"}, [2]string{"s390x", "amd64/wasmtime"},
			[2]string{"amd64/wasmtime", "amd64"}, [2]string{"amd64", "amd64/wasmtime"})
	}
	module, hash := preparedApp(t, apps.MandelR)
	args := []string{"-0.743643887037151", "0.131825904205330", "2e-9", "24", "20", "400"}

	// run runs ckptrun for arch (under qemu unless amd64) and returns what it
	// printed: the chain of the checkpoint it stopped after.
	run := func(t *testing.T, host, taskDir, out, ckptDir, resume string, steps int) string {
		t.Helper()
		arch, engine, _ := strings.Cut(host, "/")
		if engine == "" {
			engine = EngineWazero
		}
		cmdArgs := []string{bins[host], "-module", module, "-app", string(hash), "-dir", taskDir, "-out", out, "-ckpt", ckptDir, "-engine", engine}
		if resume != "" {
			cmdArgs = append(cmdArgs, "-resume", resume)
		}
		if steps > 0 {
			cmdArgs = append(cmdArgs, "-steps", strconv.Itoa(steps))
		}
		cmdArgs = append(append(cmdArgs, "--"), args...)
		if arch != "amd64" {
			cmdArgs = append([]string{qemu[arch]}, cmdArgs...)
		}
		c := exec.Command(cmdArgs[0], cmdArgs[1:]...)
		// A cgo build for arm64 loads Debian's cross libc.
		c.Env = append(os.Environ(), "QEMU_LD_PREFIX=/usr/aarch64-linux-gnu")
		var stderr strings.Builder
		c.Stderr = &stderr
		printed, err := c.Output()
		if err != nil {
			t.Fatalf("ckptrun on %s: %v\n%s", host, err, stderr.String())
		}
		return strings.TrimSpace(string(printed))
	}
	newTaskDir := func(t *testing.T) (string, string, string) {
		dir, ckpt := filepath.Join(t.TempDir(), "task"), t.TempDir()
		if err := os.Mkdir(dir, 0o700); err != nil {
			t.Fatal(err)
		}
		return dir, filepath.Join(t.TempDir(), "out"), ckpt
	}

	dir, out, ckpt := newTaskDir(t)
	run(t, "amd64", dir, out, ckpt, "", 0)
	want, err := os.ReadFile(out)
	if err != nil || !strings.HasPrefix(string(want), "P5\n24 20\n") {
		t.Fatalf("straight run: %q %v", want, err)
	}
	for _, way := range ways {
		{
			t.Run(strings.ReplaceAll(way[0]+"-to-"+way[1], "/", "-"), func(t *testing.T) {
				t.Parallel()
				dir, out, ckpt := newTaskDir(t)
				chain := run(t, way[0], dir, out, ckpt, "", 7)
				// The second host has its own, empty, task directory.
				dir2, out2, ckpt2 := newTaskDir(t)
				run(t, way[1], dir2, out2, ckpt2, chain, 0)
				got, err := os.ReadFile(out2)
				if err != nil {
					t.Fatal(err)
				}
				if workunits.HashOf(got) != workunits.HashOf(want) {
					t.Errorf("resumed on %s from %s's checkpoint: output %s, straight through %s", way[1], way[0],
						workunits.HashOf(got).Short(), workunits.HashOf(want).Short())
				}
			})
		}
	}
}
