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
// output of a run straight through.
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
	bins := map[string]string{}
	for _, arch := range []string{"amd64", "arm64", "s390x"} {
		bins[arch] = filepath.Join(t.TempDir(), "ckptrun-"+arch)
		build := exec.Command(goCmd, "build", "-o", bins[arch], "./testdata/ckptrun")
		build.Env = append(os.Environ(), "GOOS=linux", "GOARCH="+arch, "CGO_ENABLED=0")
		if out, err := build.CombinedOutput(); err != nil {
			t.Fatalf("build ckptrun for %s: %v\n%s", arch, err, out)
		}
	}
	module, hash := preparedApp(t, apps.MandelR)
	args := []string{"-0.743643887037151", "0.131825904205330", "2e-9", "24", "20", "400"}

	// run runs ckptrun for arch (under qemu unless amd64) and returns what it
	// printed: the chain of the checkpoint it stopped after.
	run := func(t *testing.T, arch, taskDir, out, ckptDir, resume string, steps int) string {
		t.Helper()
		cmdArgs := []string{bins[arch], "-module", module, "-app", string(hash), "-dir", taskDir, "-out", out, "-ckpt", ckptDir}
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
		var stderr strings.Builder
		c.Stderr = &stderr
		printed, err := c.Output()
		if err != nil {
			t.Fatalf("ckptrun on %s: %v\n%s", arch, err, stderr.String())
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
	for _, arch := range []string{"arm64", "s390x"} {
		for _, way := range [][2]string{{"amd64", arch}, {arch, "amd64"}} {
			t.Run(way[0]+"-to-"+way[1], func(t *testing.T) {
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
