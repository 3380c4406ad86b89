// Command build builds the volunteer's binaries for the release targets where
// the worker's faster engine can be built: `momonga` (pure Go, no cgo) and
// `momonga-worker` with wasmtime (cgo, the C library wasmtime-go ships for
// the target), each into OUT/GOOS-GOARCH/, and prints their sizes and
// sha-256. The same sources and toolchains give the same bytes.
//
//	go run ./cmd/momonga-worker/build [-out dist] [-targets linux/amd64,linux/arm64,windows/amd64]
//
// The C compilers are Debian's: gcc for linux/amd64, gcc-aarch64-linux-gnu
// for linux/arm64, gcc-mingw-w64-x86-64 for windows/amd64. Any other target
// gets `momonga` alone, whose workers run wazero.
package main

import (
	"crypto/sha256"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// compilers are the C compilers for cgo, by target.
var compilers = map[string]string{
	"linux/amd64":   "gcc",
	"linux/arm64":   "aarch64-linux-gnu-gcc",
	"windows/amd64": "x86_64-w64-mingw32-gcc",
}

// flags make a build depend on the sources and toolchain only: no paths, no
// VCS stamp, no build id, no symbol table.
var flags = []string{"-trimpath", "-buildvcs=false", "-ldflags=-s -w -buildid="}

func main() {
	out := flag.String("out", "dist", "output directory")
	targets := flag.String("targets", "linux/amd64,linux/arm64,windows/amd64", "GOOS/GOARCH pairs, comma-separated")
	flag.Parse()
	failed := false
	for _, target := range strings.Split(*targets, ",") {
		goos, goarch, ok := strings.Cut(target, "/")
		if !ok {
			fmt.Fprintf(os.Stderr, "build: target %q is not GOOS/GOARCH\n", target)
			os.Exit(2)
		}
		dir := filepath.Join(*out, goos+"-"+goarch)
		exe := ""
		if goos == "windows" {
			exe = ".exe"
		}
		env := []string{"GOOS=" + goos, "GOARCH=" + goarch, "GOFLAGS=", "CGO_ENABLED=0"}
		if err := build(filepath.Join(dir, "momonga"+exe), "./cmd/momonga", env, nil); err != nil {
			fmt.Fprintln(os.Stderr, err)
			failed = true
			continue
		}
		cc, ok := compilers[target]
		if !ok {
			fmt.Fprintf(os.Stderr, "build: %s: no wasmtime for this target; its workers run wazero\n", target)
			continue
		}
		if _, err := exec.LookPath(cc); err != nil {
			fmt.Fprintf(os.Stderr, "build: %s: %s is not installed (Debian: %s)\n", target, cc, debianPackage(cc))
			failed = true
			continue
		}
		env = []string{"GOOS=" + goos, "GOARCH=" + goarch, "GOFLAGS=", "CGO_ENABLED=1", "CC=" + cc}
		if err := build(filepath.Join(dir, "momonga-worker"+exe), "./cmd/momonga-worker", env, []string{"-tags", "wasmtime"}); err != nil {
			fmt.Fprintln(os.Stderr, err)
			failed = true
		}
	}
	if failed {
		os.Exit(1)
	}
}

func build(path, pkg string, env, extra []string) error {
	args := append(append(append([]string{"build"}, flags...), extra...), "-o", path, pkg)
	cmd := exec.Command("go", args...)
	cmd.Env = append(os.Environ(), env...)
	cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("build %s: %w", path, err)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	fmt.Printf("%-40s %6.1f MB  sha256 %x\n", path, float64(len(b))/1e6, sha256.Sum256(b))
	return nil
}

func debianPackage(cc string) string {
	switch cc {
	case "aarch64-linux-gnu-gcc":
		return "gcc-aarch64-linux-gnu"
	case "x86_64-w64-mingw32-gcc":
		return "gcc-mingw-w64-x86-64"
	}
	return "gcc"
}
