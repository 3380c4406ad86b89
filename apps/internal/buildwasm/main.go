// Command buildwasm builds one of momonga's sample applications as a WASI
// preview 1 module, the same way on every machine, so that the same toolchain
// always produces the same bytes (and the same sha-256, which is how the
// project addresses an app; DESIGN.md §6).
//
// Usage (from apps/, as the go:generate lines in generate.go run it):
//
//	go run ./internal/buildwasm OUT.wasm ./PACKAGE            # a Go command module
//	go run ./internal/buildwasm -reactor OUT.wasm ./PACKAGE   # a Go reactor (go:wasmexport step)
//	go run ./internal/buildwasm -c OUT.wasm FILE.c            # a C reactor, clang and wasi-libc
//	go run ./internal/buildwasm -ccommand OUT.wasm FILE.c     # a C command module (main), likewise
//	go run ./internal/buildwasm -ccommand -simd OUT.wasm FILE.c  # ... allowed to use wasm SIMD (128-bit)
//
// It exists because go:generate runs commands without a shell and so cannot
// set GOOS and GOARCH itself on every platform. Settings from the caller's
// environment that would change the output (GOFLAGS, GOWASM, GOEXPERIMENT) are
// cleared.
package main

import (
	"flag"
	"fmt"
	"os"
	"os/exec"
)

// flags are the build flags of every committed Go module: no file paths, no
// symbol table, no VCS stamp, so the output depends only on the sources and
// the toolchain.
var flags = []string{"-trimpath", "-ldflags=-s", "-buildvcs=false"}

// cCompile and cLink build a C reactor for wasm32-wasi with Debian's clang,
// lld and wasi-libc: optimised, no debug sections, no absolute paths in the
// output. Compiling and linking are two steps because clang, when it links
// with an optimisation level, also runs binaryen's wasm-opt if that happens
// to be installed, and the output would depend on it.
var (
	cCompile = []string{"--target=wasm32-wasi", "--sysroot=/usr", "-O2", "-ffile-prefix-map=.=.", "-Wall", "-Werror", "-c"}
	cLink    = []string{"--target=wasm32-wasi", "--sysroot=/usr", "-Wl,--strip-all"}
)

func main() {
	reactor := flag.Bool("reactor", false, "build a Go reactor module (-buildmode=c-shared)")
	c := flag.Bool("c", false, "build a C reactor module with clang")
	cCommand := flag.Bool("ccommand", false, "build a C command module with clang")
	simd := flag.Bool("simd", false, "let clang use wasm's 128-bit SIMD, as it uses SSE2 on x86-64 and NEON on arm64 natively")
	flag.Parse()
	if flag.NArg() != 2 {
		fmt.Fprintln(os.Stderr, "usage: buildwasm [-reactor | -c | -ccommand] OUT.wasm ./PACKAGE|FILE.c")
		os.Exit(2)
	}
	out, src := flag.Arg(0), flag.Arg(1)
	var cmd *exec.Cmd
	if *c || *cCommand {
		obj := out + ".o"
		defer os.Remove(obj)
		args := append([]string{}, cCompile...)
		if *simd {
			args = append(args, "-msimd128")
		}
		compile := exec.Command("clang", append(args, "-o", obj, src)...)
		compile.Stdout, compile.Stderr = os.Stdout, os.Stderr
		if err := compile.Run(); err != nil {
			fmt.Fprintf(os.Stderr, "buildwasm %s: %v\n", src, err)
			os.Exit(1)
		}
		link := append([]string{}, cLink...)
		if *c {
			link = append(link, "-mexec-model=reactor")
		}
		cmd = exec.Command("clang", append(link, "-o", out, obj, "-lm")...)
	} else {
		args := append([]string{"build"}, flags...)
		if *reactor {
			args = append(args, "-buildmode=c-shared")
		}
		cmd = exec.Command("go", append(args, "-o", out, src)...)
		cmd.Env = append(os.Environ(), "GOOS=wasip1", "GOARCH=wasm", "GOFLAGS=", "GOWASM=", "GOEXPERIMENT=", "CGO_ENABLED=0")
	}
	cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
	if err := cmd.Run(); err != nil {
		fmt.Fprintf(os.Stderr, "buildwasm %s: %v\n", src, err)
		os.Exit(1)
	}
}
