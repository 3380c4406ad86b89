// Command buildwasm builds one of momonga's sample applications as a WASI
// preview 1 module, the same way on every machine, so that the same Go
// toolchain always produces the same bytes (and the same sha-256, which is how
// the project addresses an app; DESIGN.md §6).
//
// Usage (from apps/, as the go:generate lines in generate.go run it):
//
//	go run ./internal/buildwasm OUT.wasm ./PACKAGE
//
// It exists because go:generate runs commands without a shell and so cannot
// set GOOS and GOARCH itself on every platform. Settings from the caller's
// environment that would change the output (GOFLAGS, GOWASM, GOEXPERIMENT) are
// cleared.
package main

import (
	"fmt"
	"os"
	"os/exec"
)

// flags are the build flags of every committed module: no file paths, no
// symbol table, no VCS stamp, so the output depends only on the sources and
// the toolchain.
var flags = []string{"-trimpath", "-ldflags=-s", "-buildvcs=false"}

func main() {
	if len(os.Args) != 3 {
		fmt.Fprintln(os.Stderr, "usage: buildwasm OUT.wasm ./PACKAGE")
		os.Exit(2)
	}
	args := append([]string{"build"}, flags...)
	args = append(args, "-o", os.Args[1], os.Args[2])
	cmd := exec.Command("go", args...)
	cmd.Env = append(os.Environ(), "GOOS=wasip1", "GOARCH=wasm", "GOFLAGS=", "GOWASM=", "GOEXPERIMENT=", "CGO_ENABLED=0")
	cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
	if err := cmd.Run(); err != nil {
		fmt.Fprintf(os.Stderr, "buildwasm %s: %v\n", os.Args[2], err)
		os.Exit(1)
	}
}
