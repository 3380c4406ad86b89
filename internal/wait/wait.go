// Package wait is how tests wait for something another goroutine or
// process does: they poll a condition with a deadline rather than sleep for
// a guessed time (STYLE.md), and fail saying what they waited for.
package wait

import "time"

// Every is how often For checks its condition.
const Every = 10 * time.Millisecond

// T is the part of *testing.T (or *testing.B) that For uses.
type T interface {
	Helper()
	Fatalf(format string, args ...any)
}

// For checks cond every Every until it holds, and fails the test if it does
// not within timeout: "after 5s, still waiting for <what>".
func For(t T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	if !Until(timeout, Every, cond) {
		t.Fatalf("after %v, still waiting for %s", timeout, what)
	}
}

// Until checks cond every interval until it holds, and reports whether it
// did before timeout passed. cond is checked once more at the deadline, so
// a slow check does not lose the last chance.
func Until(timeout, every time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(timeout)
	tick := time.NewTicker(every)
	defer tick.Stop()
	for !cond() {
		if !time.Now().Before(deadline) {
			return false
		}
		<-tick.C
	}
	return true
}
