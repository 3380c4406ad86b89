package runner

import (
	"fmt"
	"io"
	"slices"
	"strings"
)

// stopError ends a module from inside a host call. wazero turns a panic in a
// host function into the error its Call returns (that is how proc_exit
// works), so panicking with a stopError stops the module at once, where
// closing the module would only be noticed with WithCloseOnContextDone and
// its cost on every loop.
type stopError struct {
	reason  string
	stopped bool // the run was asked to stop (Control.Stop), and did
}

func (e *stopError) Error() string { return e.reason }

// cappedOutput is the module's stdout. The output is the task's result, and
// a module that writes more than the limit is stopped at that write rather
// than left to fill the volunteer's disk until its time runs out.
type cappedOutput struct {
	w       io.Writer
	written int64
	limit   int64
}

func (c *cappedOutput) Write(p []byte) (int, error) {
	if room := c.limit - c.written; int64(len(p)) > room {
		panic(&stopError{reason: fmt.Sprintf("wrote more than %s of output", formatBytes(c.limit))})
	}
	n, err := c.w.Write(p)
	c.written += int64(n)
	if err != nil {
		panic(&stopError{reason: fmt.Sprintf("could not write the output on this computer: %v", err)})
	}
	return n, nil
}

// StderrKept is how much of a module's stderr a Result keeps: the first
// StderrKept/4 bytes, where a Go program says why it died ("panic: ",
// "fatal error: ") before its goroutine dump, and the last 3*StderrKept/4,
// where most other programs say it.
const StderrKept = 4 << 10

// stderrCapture keeps the start and the end of what is written to it.
type stderrCapture struct {
	head, tail []byte
	dropped    int64
}

func newStderrCapture() *stderrCapture { return &stderrCapture{} }

func (c *stderrCapture) Write(p []byte) (int, error) {
	n := len(p)
	if room := StderrKept/4 - len(c.head); room > 0 {
		take := min(room, len(p))
		c.head = append(c.head, p[:take]...)
		p = p[take:]
	}
	c.tail = append(c.tail, p...)
	if over := len(c.tail) - 3*StderrKept/4; over > 0 {
		c.dropped += int64(over)
		c.tail = c.tail[:copy(c.tail, c.tail[over:])]
	}
	return n, nil
}

func (c *stderrCapture) String() string {
	s := string(c.head)
	if c.dropped > 0 {
		s += fmt.Sprintf("\n[%d bytes left out]\n", c.dropped)
	}
	return strings.ToValidUTF8(s+string(c.tail), "\uFFFD")
}

// stderrSummary picks what a failure reason quotes from stderr: a Go
// program's "panic:" or "fatal error:" line, otherwise the last few lines,
// joined by " | " so that a reason stays one line in logs and tables.
func stderrSummary(stderr string) string {
	lines := strings.Split(stderr, "\n")
	for _, l := range lines {
		if strings.HasPrefix(l, "panic: ") || strings.HasPrefix(l, "fatal error: ") {
			return strings.TrimSpace(l)
		}
	}
	var kept []string
	for i := len(lines) - 1; i >= 0 && len(kept) < 5; i-- {
		if l := strings.TrimSpace(lines[i]); l != "" {
			kept = append(kept, l)
		}
	}
	slices.Reverse(kept)
	return strings.Join(kept, " | ")
}

// formatBytes writes a size the way limits are given: 64 MiB, 16 KiB.
func formatBytes(n int64) string {
	switch {
	case n >= 1<<30 && n%(1<<30) == 0:
		return fmt.Sprintf("%d GiB", n>>30)
	case n >= 1<<20 && n%(1<<20) == 0:
		return fmt.Sprintf("%d MiB", n>>20)
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10 && n%(1<<10) == 0:
		return fmt.Sprintf("%d KiB", n>>10)
	}
	return fmt.Sprintf("%d bytes", n)
}
