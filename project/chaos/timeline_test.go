package chaos

import (
	"slices"
	"testing"
	"time"
)

const s = time.Second

func TestLive(t *testing.T) {
	// Three members ready before the run; position 0 killed at 10 s and
	// back at 13 s; positions 1 and 2 killed at 11 s and 12 s, back at
	// 20 s and 14 s; position 1's first replacement exits by itself at 18 s
	// before it was ever ready.
	evs := []Event{
		{At: -2 * s, Position: 0, Kind: EventReady},
		{At: -1 * s, Position: 1, Kind: EventReady},
		{At: -1 * s, Position: 2, Kind: EventReady},
		{At: 10 * s, Position: 0, Kind: EventKill},
		{At: 11 * s, Position: 1, Kind: EventKill},
		{At: 12 * s, Position: 2, Kind: EventKill},
		{At: 13 * s, Position: 0, Gen: 1, Kind: EventReady},
		{At: 14 * s, Position: 2, Gen: 1, Kind: EventReady},
		{At: 18 * s, Position: 1, Gen: 1, Kind: EventExit},
		{At: 20 * s, Position: 1, Gen: 2, Kind: EventReady},
	}
	l := Live(evs, 3, 30*s)
	if want := (Span{Longest: 3 * s, LongestAt: 11 * s, Total: 3 * s, Count: 1}); l.BelowMajority != want {
		t.Errorf("below majority %+v, want %+v", l.BelowMajority, want)
	}
	if want := (Span{Longest: s, LongestAt: 12 * s, Total: s, Count: 1}); l.None != want {
		t.Errorf("none alive %+v, want %+v", l.None, want)
	}
	for _, c := range []struct {
		from, to time.Duration
		want     int
	}{{0, 10 * s, 2}, {0, 9 * s, 3}, {11500 * time.Millisecond, 12500 * time.Millisecond, 0}, {15 * s, 30 * s, 2}, {21 * s, 25 * s, 3}} {
		if got := MinLive(evs, c.from, c.to); got != c.want {
			t.Errorf("fewest serving in [%s, %s]: %d, want %d", c.from, c.to, got, c.want)
		}
	}
	// 3×10 + 2×1 + 1×1 + 0×1 + 1×1 + 2×6 + 3×10 member-seconds.
	if l.MemberSeconds != 76 {
		t.Errorf("%g member-seconds, want 76", l.MemberSeconds)
	}
}

func TestLiveNobodyAtStart(t *testing.T) {
	l := Live([]Event{{At: 2 * s, Kind: EventReady}}, 1, 5*s)
	if l.None.Total != 2*s || l.BelowMajority.Total != 2*s {
		t.Errorf("%+v: want 2 s with nobody serving before the first member", l)
	}
}

func TestWindows(t *testing.T) {
	ok := []time.Duration{500 * time.Millisecond, 900 * time.Millisecond, 4 * s, 3 * s, 4500 * time.Millisecond}
	got := Windows(ok, 0, 7*s, s)
	want := []Window{{Start: 900 * time.Millisecond, Length: 2100 * time.Millisecond, MinLive: -1}, {Start: 4500 * time.Millisecond, Length: 2500 * time.Millisecond, MinLive: -1}}
	if !slices.Equal(got, want) {
		t.Errorf("windows %v, want %v", got, want)
	}
	if got := Windows(nil, 0, 3*s, s); !slices.Equal(got, []Window{{0, 3 * s, -1}}) {
		t.Errorf("nothing served: windows %v, want the whole run", got)
	}
}
