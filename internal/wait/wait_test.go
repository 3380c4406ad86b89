package wait

import (
	"fmt"
	"sync/atomic"
	"testing"
	"time"
)

func TestUntilReturnsOnceTheConditionHolds(t *testing.T) {
	var n atomic.Int32
	start := time.Now()
	if !Until(time.Minute, time.Millisecond, func() bool { return n.Add(1) == 5 }) {
		t.Fatal("Until gave up on a condition that came true")
	}
	if n.Load() != 5 {
		t.Errorf("checked %d times, want 5", n.Load())
	}
	if took := time.Since(start); took > 30*time.Second {
		t.Errorf("took %v for five checks a millisecond apart", took)
	}
}

func TestUntilGivesUpAtTheDeadline(t *testing.T) {
	var n atomic.Int32
	start := time.Now()
	if Until(50*time.Millisecond, 10*time.Millisecond, func() bool { n.Add(1); return false }) {
		t.Fatal("Until reported a condition that never held")
	}
	if took := time.Since(start); took < 50*time.Millisecond {
		t.Errorf("gave up after %v, before the 50ms timeout", took)
	}
	if n.Load() < 2 {
		t.Errorf("checked %d times in 50ms, every 10ms", n.Load())
	}
}

// fakeT records what For would tell the test.
type fakeT struct{ failed string }

func (f *fakeT) Helper() {}
func (f *fakeT) Fatalf(format string, args ...any) {
	f.failed = fmt.Sprintf(format, args...)
}

func TestForFailsSayingWhat(t *testing.T) {
	var ft fakeT
	For(&ft, 20*time.Millisecond, "the worker to stop", func() bool { return false })
	if want := "after 20ms, still waiting for the worker to stop"; ft.failed != want {
		t.Errorf("failed with %q, want %q", ft.failed, want)
	}
	ft = fakeT{}
	For(&ft, time.Minute, "nothing", func() bool { return true })
	if ft.failed != "" {
		t.Errorf("failed on a condition that holds: %q", ft.failed)
	}
}
