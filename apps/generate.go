package apps

// The committed modules are rebuilt with `go generate ./apps/` (mandelc.wasm and
// kernels.wasm need Debian's clang, lld and wasi-libc); TestModulesAreReproducible fails
// when they no longer match their sources.
//go:generate go run ./internal/buildwasm primes.wasm ./primes
//go:generate go run ./internal/buildwasm mandel.wasm ./mandel
//go:generate go run ./internal/buildwasm -reactor mandelr.wasm ./mandelr
//go:generate go run ./internal/buildwasm -c mandelc.wasm mandelc/mandel.c
//go:generate go run ./internal/buildwasm matinv.wasm ./matinv
//go:generate go run ./internal/buildwasm -ccommand -simd kernels.wasm kernels/kernels.c
