package sched

import (
	"slices"
	"time"

	wu "github.com/momonga-project/momonga/workunits"
)

// Pacing reconnections by server. When a NATS server restarts, the hosts
// connected to it come back at once, each through the auth callout of the
// server it reaches; the hello reply spreads a host's attempts over the time
// that server takes to admit them (wu.ReconnectSpread). A host names in its
// hello the server it goes through (wu.Hello.Server), and the spread counts
// the hosts that last said hello through the same server, plus every host
// that named none: a leaf node's hosts are paced by the leaf's numbers, and a
// host whose server is not known still counts everywhere, as all hosts did
// before hosts named their server. The counts come from the log alone, as
// every member decides alike.

// maxServers is how many servers may be named at once: host.Server is 16
// bits. A host that names a server past them counts as naming none.
const maxServers = 1<<16 - 1

// placeServer records that h said hello through the server called name.
func (m *Machine) placeServer(h *host, name string) {
	if h.Server != 0 && m.st.Servers[h.Server-1] == name || h.Server == 0 && name == "" {
		return
	}
	m.leaveServer(h)
	if h.Server = m.serverPlace(name); h.Server != 0 {
		m.ix.serverHosts[h.Server]++
		m.ix.named++
	}
}

// leaveServer takes h off its server's count; a server no host names any
// more gives its place up.
func (m *Machine) leaveServer(h *host) {
	if h.Server == 0 {
		return
	}
	m.ix.named--
	if m.ix.serverHosts[h.Server]--; m.ix.serverHosts[h.Server] == 0 {
		delete(m.ix.serverSlot, m.st.Servers[h.Server-1])
		m.st.Servers[h.Server-1] = ""
	}
	h.Server = 0
}

// serverPlace is the place of the server called name, taken if it has none:
// the first free one. It is 0 for "" and once every place is taken.
func (m *Machine) serverPlace(name string) uint16 {
	if name == "" {
		return 0
	}
	if p, ok := m.ix.serverSlot[name]; ok {
		return p
	}
	i := slices.Index(m.st.Servers, "")
	if i < 0 {
		if len(m.st.Servers) >= maxServers {
			return 0
		}
		m.st.Servers = append(m.st.Servers, "")
		m.ix.serverHosts = append(m.ix.serverHosts, 0)
		i = len(m.st.Servers) - 1
	}
	m.st.Servers[i] = name
	p := uint16(i + 1)
	m.ix.serverSlot[name] = p
	return p
}

// reconnectSpread is the spread h's hello reply gives it: from the hosts of
// its server and those whose server is not known, or from all hosts when it
// named none.
func (m *Machine) reconnectSpread(h *host) time.Duration {
	n := len(m.st.Hosts)
	if h.Server != 0 {
		n = m.ix.serverHosts[h.Server] + n - m.ix.named
	}
	return wu.ReconnectSpread(n)
}

// reindexServers counts the hosts of each server from the state. A name
// written in two places keeps the first; a host naming a place that holds no
// server names none; a place no host names is given up, as leaveServer
// would have.
func (m *Machine) reindexServers() {
	n := len(m.st.Servers)
	m.ix.serverSlot = make(map[string]uint16, n)
	place := make([]uint16, n+1) // what each place stands for
	for i, name := range m.st.Servers {
		if name == "" {
			continue
		}
		p, seen := m.ix.serverSlot[name]
		if !seen {
			p = uint16(i + 1)
			m.ix.serverSlot[name] = p
		}
		place[i+1] = p
	}
	m.ix.serverHosts = make([]int, n+1)
	m.ix.named = 0
	for _, h := range m.st.Hosts {
		if int(h.Server) > n {
			h.Server = 0
		}
		if h.Server = place[h.Server]; h.Server != 0 {
			m.ix.serverHosts[h.Server]++
			m.ix.named++
		}
	}
	for name, p := range m.ix.serverSlot {
		if m.ix.serverHosts[p] == 0 {
			delete(m.ix.serverSlot, name)
		}
	}
	for i, name := range m.st.Servers {
		if p, ok := m.ix.serverSlot[name]; !ok || p != uint16(i+1) {
			m.st.Servers[i] = ""
		}
	}
}
