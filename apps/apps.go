// Package apps holds momonga's sample applications and their committed
// WebAssembly modules (WASI preview 1 command modules, DESIGN.md §6), which the
// demo project publishes and the tests run under wazero:
//
//   - primes (./primes): counts the primes in [A, B); short work units whose
//     one-line results replicas can compare.
//   - mandel (./mandel): renders a deep Mandelbrot tile as a PGM image;
//     a long, CPU-bound task that reports its progress in a file.
//
// The modules are built by `go generate ./apps/` with a fixed set of flags, so
// the same Go toolchain always yields the same bytes and the same sha-256.
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
