package sched

import (
	"sort"
)

// Idle hosts (DESIGN §4, "new work reaches idle hosts at once"): a host
// whose work request got fewer tasks than it could take waits for work.
// When an entry queues tasks (a submission, tasks lost and to go again, a
// unit that needs another replica), as many of the waiting hosts as there
// are tasks, the fastest first, are named in a WorkWaiting output; the
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
	hosts := make([]*host, 0, len(m.ix.idle))
	for id := range m.ix.idle {
		hosts = append(hosts, m.st.Hosts[id])
	}
	// The fastest first; ties by id, so that every member names the same.
	speed := make(map[string]float64, len(hosts))
	for _, h := range hosts {
		speed[h.ID] = m.speed(h)
	}
	sort.Slice(hosts, func(i, j int) bool {
		if si, sj := speed[hosts[i].ID], speed[hosts[j].ID]; si != sj {
			return si > sj
		}
		return hosts[i].ID < hosts[j].ID
	})
	hosts = hosts[:min(len(hosts), m.available)]
	out := WorkWaiting{Hosts: make([]string, len(hosts))}
	for i, h := range hosts {
		out.Hosts[i] = h.ID
		m.setIdle(h, false)
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
