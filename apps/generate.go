package apps

// The committed modules are rebuilt with `go generate ./apps/`; TestModulesAreReproducible
// fails when they no longer match their sources.
//go:generate go run ./internal/buildwasm primes.wasm ./primes
//go:generate go run ./internal/buildwasm mandel.wasm ./mandel
