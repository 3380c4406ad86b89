package main

import (
	"strings"
	"testing"
)

// Bad flags are refused before anything starts, with a sentence that
// names the flag.
func TestChaosBadFlags(t *testing.T) {
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"--members", "0"}, "--members must be between 1 and 15"},
		{[]string{"--half-life", "0s"}, "--half-life must be positive"},
		{[]string{"--duration", "-1s"}, "--duration must be positive"},
		{[]string{"--replace", "-2s"}, "--replace must not be negative"},
		{[]string{"--rate", "0"}, "--rate must be above 0"},
		{[]string{"--lapse", "100ms"}, "--lapse (100ms) must be longer than --heartbeat (250ms)"},
		{[]string{"--snapshot-every", "0"}, "--snapshot-every must be at least 1"},
		{[]string{"5"}, `unexpected argument "5"`},
		{[]string{"--half-life", "soon"}, "invalid value"},
	} {
		a := app()
		a.Writer, a.ErrWriter = &strings.Builder{}, &strings.Builder{}
		err := a.Run(append([]string{"momonga-project", "vpeer", "chaos"}, c.args...))
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%v: error %v, want one containing %q", c.args, err, c.want)
		}
	}
}
