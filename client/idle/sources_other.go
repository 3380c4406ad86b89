//go:build unix && !linux && !darwin

package idle

import (
	"log/slog"
	"os"
)

// NewMonitor watches the X display, where there is one; nothing else is
// measured on this platform yet.
func NewMonitor(*slog.Logger) *Monitor {
	m := &Monitor{}
	if d := os.Getenv("DISPLAY"); d != "" {
		x := newX11Input(d)
		m.Inputs = append(m.Inputs, x)
		m.Closer = x.close
	}
	return m
}
