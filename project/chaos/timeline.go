package chaos

import (
	"slices"
	"time"
)

// Kinds of Event.
const (
	EventStart = "start" // a member process was started
	EventReady = "ready" // its member caught up with the log and serves
	EventKill  = "kill"  // it was killed (SIGKILL)
	EventExit  = "exit"  // it ended by itself: a departure nobody planned
	EventLease = "lease" // its member took or lost the group's lease
)

// Event is something that happened to a member process.
type Event struct {
	At       time.Duration `json:"at_ns"` // since the run started; negative before
	Position int           `json:"position"`
	Gen      int           `json:"gen"`
	Kind     string        `json:"kind"`
	Member   string        `json:"member,omitempty"` // the vpeer member, once ready
	Detail   string        `json:"detail,omitempty"`
}

// Span sums the intervals during which a condition held.
type Span struct {
	Longest   time.Duration `json:"longest_ns"`
	LongestAt time.Duration `json:"longest_at_ns"` // when the longest began
	Total     time.Duration `json:"total_ns"`
	Count     int           `json:"count"` // intervals
}

func (s *Span) add(from, to time.Duration) {
	if to <= from {
		return
	}
	s.Count++
	s.Total += to - from
	if to-from > s.Longest {
		s.Longest, s.LongestAt = to-from, from
	}
}

// Liveness is how many members served over a run.
type Liveness struct {
	MeanAlive     float64 `json:"mean_alive"`
	MemberSeconds float64 `json:"member_seconds"` // integral of live members over the run
	// BelowMajority is when fewer than a majority of the members served,
	// None when none did.
	BelowMajority Span `json:"below_majority"`
	None          Span `json:"none"`
}

// Live works out from events how many members served between 0 and end:
// a process serves from its ready event until it is killed or exits.
func Live(events []Event, members int, end time.Duration) Liveness {
	evs := slices.Clone(events)
	slices.SortStableFunc(evs, func(a, b Event) int { return int(min(max(a.At-b.At, -1), 1)) })
	type proc struct{ position, gen int }
	live := map[proc]bool{}
	majority := members/2 + 1
	var l Liveness
	var belowFrom, noneFrom time.Duration
	below, none := true, true // nobody serves before the first event
	at := time.Duration(0)
	advance := func(to time.Duration) {
		to = min(max(to, 0), end)
		if to > at {
			l.MemberSeconds += float64(len(live)) * (to - at).Seconds()
			at = to
		}
	}
	update := func(t time.Duration) {
		t = min(max(t, 0), end)
		switch b := len(live) < majority; {
		case b && !below:
			below, belowFrom = true, t
		case !b && below:
			below = false
			l.BelowMajority.add(belowFrom, t)
		}
		switch n := len(live) == 0; {
		case n && !none:
			none, noneFrom = true, t
		case !n && none:
			none = false
			l.None.add(noneFrom, t)
		}
	}
	for _, e := range evs {
		if e.At > end {
			break
		}
		advance(e.At)
		p := proc{e.Position, e.Gen}
		switch e.Kind {
		case EventReady:
			live[p] = true
		case EventKill, EventExit:
			delete(live, p)
		}
		update(e.At)
	}
	advance(end)
	if below {
		l.BelowMajority.add(belowFrom, end)
	}
	if none {
		l.None.add(noneFrom, end)
	}
	if end > 0 {
		l.MeanAlive = l.MemberSeconds / end.Seconds()
	}
	return l
}

// Window is a time during which no request succeeded.
type Window struct {
	Start  time.Duration `json:"start_ns"` // since the run started
	Length time.Duration `json:"length_ns"`
	// MinLive is the fewest members serving during the window (from the
	// member processes' events; -1 when not worked out).
	MinLive int `json:"min_live"`
}

// MinLive returns the fewest members serving at any time in [from, to].
func MinLive(events []Event, from, to time.Duration) int {
	evs := slices.Clone(events)
	slices.SortStableFunc(evs, func(a, b Event) int { return int(min(max(a.At-b.At, -1), 1)) })
	type proc struct{ position, gen int }
	live := map[proc]bool{}
	least := -1
	for _, e := range evs {
		if e.At > to {
			break
		}
		if e.At >= from && least < 0 {
			least = len(live) // as the window opens
		}
		switch e.Kind {
		case EventReady:
			live[proc{e.Position, e.Gen}] = true
		case EventKill, EventExit:
			delete(live, proc{e.Position, e.Gen})
		}
		if e.At >= from {
			least = min(least, len(live))
		}
	}
	if least < 0 {
		least = len(live)
	}
	return least
}

// Windows returns the gaps longer than gap between from, the successful
// requests' completion times (in any order) and to: times when volunteers
// asked and nobody was served.
func Windows(successes []time.Duration, from, to, gap time.Duration) []Window {
	ts := slices.Clone(successes)
	slices.Sort(ts)
	var ws []Window
	last := from
	for _, t := range append(ts, to) {
		if t < from || t > to {
			continue
		}
		if t-last > gap {
			ws = append(ws, Window{Start: last, Length: t - last, MinLive: -1})
		}
		last = max(last, t)
	}
	return ws
}
