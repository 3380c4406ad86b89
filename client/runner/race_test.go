//go:build race

package runner

// raceEnabled is set when the tests run under the race detector, which slows
// wazero's compiler down about tenfold and so distorts any timing of it.
const raceEnabled = true
