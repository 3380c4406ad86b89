package sched

import (
	"slices"
	"sort"
)

// Idle hosts (DESIGN §4, "new work reaches idle hosts at once"): a host
// whose work request got fewer tasks than it could take waits for work.
// When an entry queues tasks (a submission, tasks lost and to go again, a
// unit that needs another replica), as many of the waiting hosts as there
// are tasks (capability-aware, the fastest first) are named in a
// WorkWaiting output; the
// project tells them on their push subject and they ask for work at once,
// rather than at the end of a back-off that can last minutes. Polling stays
// as the fallback for a host that did not hear.

// setIdle records whether h waits for work.
func (m *Machine) setIdle(h *host, idle bool) {
	h.Idle = idle
	if idle {
		m.ix.idle[h.ID] = true
	} else {
		delete(m.ix.idle, h.ID)
	}
}

// announce names the idle hosts to tell of the tasks the entry being
// applied queued.
func (m *Machine) announce() {
	if m.available == 0 || len(m.ix.idle) == 0 {
		return
	}
	// Capability-aware, the fastest first; ties, and first come first
	// served, by id, so that every member names the same. Only as many as
	// there are tasks are wanted: kept in order as they are found, rather
	// than sorting every host waiting, which on a large project is most of
	// them and the entry one of many small submissions.
	type cand struct {
		h     *host
		speed float64
	}
	before := func(a, b cand) bool {
		if a.speed != b.speed {
			return a.speed > b.speed
		}
		return a.h.ID < b.h.ID
	}
	k := min(m.available, len(m.ix.idle))
	best := make([]cand, 0, k+1)
	for id := range m.ix.idle {
		c := cand{h: m.st.Hosts[id]}
		if m.cfg.Policy == PolicyCapability {
			c.speed = m.speed(c.h)
		}
		if k > 64 {
			best = append(best, c) // many wanted: sorted below
			continue
		}
		if len(best) == k && !before(c, best[k-1]) {
			continue
		}
		i := sort.Search(len(best), func(i int) bool { return before(c, best[i]) })
		best = slices.Insert(best, i, c)
		if len(best) > k {
			best = best[:k]
		}
	}
	if k > 64 {
		sort.Slice(best, func(i, j int) bool { return before(best[i], best[j]) })
		best = best[:k]
	}
	out := WorkWaiting{Hosts: make([]string, len(best))}
	for i, c := range best {
		out.Hosts[i] = c.h.ID
		m.setIdle(c.h, false)
	}
	m.emit(out)
}

// IdleHosts lists the hosts waiting for work, and how many tasks wait for
// a host: a new lease holder tells them, in case the one before could not.
func (m *Machine) IdleHosts() (hosts []string, tasks int) {
	seen := map[string]bool{}
	for _, q := range [][]string{m.st.Retry, m.st.Unsent} {
		for _, id := range q {
			if waiting(m.st.Tasks[id]) && !seen[id] {
				seen[id] = true
			}
		}
	}
	return sortedKeys(m.ix.idle), len(seen)
}
