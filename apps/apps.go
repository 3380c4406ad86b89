// Package apps holds momonga's sample applications and their committed
// WebAssembly modules (WASI preview 1 command modules, DESIGN.md §6), which the
// demo project publishes and the tests run under wazero:
//
//   - primes (./primes): counts the primes in [A, B); short work units whose
//     one-line results replicas can compare.
//   - mandel (./mandel): renders a deep Mandelbrot tile as a PGM image;
//     a long, CPU-bound task that reports its progress in a file.
//   - mandelr (./mandelr): the same image from a Go reactor module (built with
//     -buildmode=c-shared, exporting `step`), one row per step, so that the
//     runner can checkpoint it between rows and resume it elsewhere.
//   - mandelc (./mandelc): mandelr written in C, built with clang and
//     wasi-libc; it draws the same image, byte for byte.
//   - matinv (./matinv): inverts an n×n matrix made from a seed and prints a
//     checksum of the inverse: the workload of `momonga-project bench share`.
//
// The modules are built by `go generate ./apps/` with a fixed set of flags, so
// the same toolchain always yields the same bytes and the same sha-256. The
// reactors are committed as built; `momonga-project app add` exports their
// mutable globals when it publishes them (workunits.PrepareModule).
package apps

import _ "embed"

// Primes is the primes module (primes.wasm).
//
//go:embed primes.wasm
var Primes []byte

// Mandel is the mandel module (mandel.wasm).
//
//go:embed mandel.wasm
var Mandel []byte

// MandelR is the Go reactor version of mandel (mandelr.wasm).
//
//go:embed mandelr.wasm
var MandelR []byte

// MandelC is the C reactor version of mandel (mandelc.wasm).
//
//go:embed mandelc.wasm
var MandelC []byte

// MatInv is the matrix inversion module (matinv.wasm).
//
//go:embed matinv.wasm
var MatInv []byte

// Kernels is the C benchmark module (kernels.wasm): four CPU-bound kernels
// (linked-list sorting, matrix multiply, SHA-256, n-body) that print
// checksums, for comparing engines with native code.
//
//go:embed kernels.wasm
var Kernels []byte

// KernelsSource is kernels.wasm's C source, which `bench engines` also builds
// natively with the same flags.
//
//go:embed kernels/kernels.c
var KernelsSource []byte

// KernelsCFlags are the compiler flags of kernels.wasm that do not name the
// target (see internal/buildwasm): a native build with these computes the
// same checksums. Each build uses its target's baseline vector instructions:
// kernels.wasm is built with wasm's 128-bit SIMD (-msimd128), the
// counterpart of the SSE2 every x86-64 compiler uses and of arm64's NEON.
var KernelsCFlags = []string{"-O2", "-Wall", "-Werror"}
