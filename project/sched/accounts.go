package sched

import (
	"slices"
	"sort"
	"strconv"
	"strings"

	wu "github.com/momonga-project/momonga/workunits"
)

// Accounts (DESIGN §4, §9): users, teams and the hosts users attach. They
// live in the scheduler's state so that they replicate with it and survive
// restarts; the project's NATS authorisation asks this state who a
// connecting host is (HostByNKey, UserByKeyHash).

// indexes find users, teams and hosts by what requests name them by. They
// are derived from the state, rebuilt on Restore and kept up to date by the
// operations that change what they index.
type indexes struct {
	userByKey  map[wu.Hash]string // account key hash → user id
	userByName map[string]string
	teamByName map[string]string
	hostByNKey map[string]*host

	// Capability-aware scheduling (capability.go): each host's tasks out
	// and their estimated run time (ms); the hosts' speeds and the
	// computing units' sizes, as histograms (each host keeps the bucket it
	// is counted in: host.bucket); the waiting tasks on each input blob, in
	// task order; the hosts waiting for work (idle.go).
	running map[string]int
	backlog map[string]int64
	hosts   histogram
	seen    seenHeap // when each active host stops counting, unless seen again
	sizes   histogram
	waiting [buckets]int // the waiting tasks, by their unit's size bucket
	byBlob  map[wu.Hash][]string
	idle    map[string]bool
	// Earliest finish (finish.go): the tasks each host holds, and the
	// hosts that may hold work back, by speed.
	held map[string][]*task
	alts alternatives
	late []altEntry // busy hosts late on their estimate (backup.go)
	// Pacing by server (servers.go): the hosts naming each place of
	// state.Servers (index 0 unused), all of them, and each name's place.
	serverHosts []int
	named       int
	serverSlot  map[string]uint16
}

func (m *Machine) reindex() {
	m.ix = indexes{userByKey: map[wu.Hash]string{}, userByName: map[string]string{}, teamByName: map[string]string{}, hostByNKey: map[string]*host{},
		running: map[string]int{}, backlog: map[string]int64{}, byBlob: map[wu.Hash][]string{}, idle: map[string]bool{},
		held: map[string][]*task{}}
	for id, u := range m.st.Users {
		m.ix.userByKey[u.KeyHash] = id
		m.ix.userByName[u.Name] = id
	}
	for id, t := range m.st.Teams {
		m.ix.teamByName[t.Name] = id
	}
	for id, h := range m.st.Hosts {
		if h.NKey != "" {
			m.ix.hostByNKey[h.NKey] = h
		}
		h.bucket = 0
		m.rank(h)
		if h.Idle {
			m.ix.idle[id] = true
		}
	}
	for id := range m.st.Assigned {
		t := m.st.Tasks[id]
		m.ix.running[t.Host]++
		m.ix.backlog[t.Host] += t.Est
		m.ix.held[t.Host] = append(m.ix.held[t.Host], t)
	}
	for _, h := range m.st.Hosts {
		m.placeAlt(h)
	}
	m.reindexServers()
	for _, t := range m.st.Tasks {
		if t.State == wu.TaskUnsent {
			m.waitWork(t, 1)
		}
	}
	for _, u := range m.st.Units {
		if computed(u) {
			m.sizeRank(u)
		}
	}
	for _, t := range m.st.Tasks {
		if waiting(t) {
			m.ix.waiting[bucket(m.st.Units[t.Unit].FPOps)]++
		}
	}
	for _, q := range [][]string{m.st.Retry, m.st.Unsent} {
		for _, id := range q {
			if t := m.st.Tasks[id]; waiting(t) {
				if u := m.st.Units[t.Unit]; u.Stdin != "" {
					m.index(u.Stdin, id)
				}
			}
		}
	}
	m.rewatch()
	m.reindexStats()
}

// owner is who a host computes for: its user, or for a host that attached
// to no user (an open project), the host itself.
func (m *Machine) owner(h *host) string {
	if h.User != "" {
		return h.User
	}
	return "host:" + h.ID
}

func errRevoked(id string) error {
	return wu.Errorf(wu.CodeForbidden, "host %s has been revoked by the project: to compute again as a new host, remove host.nk from its data directory and attach again", id)
}

// dispatchAccounts applies the operations on accounts and the validator's
// verdicts; ok is false for an op it does not know.
func (m *Machine) dispatchAccounts(cmd wu.Command) (reply []byte, ok bool) {
	switch cmd.Op {
	case wu.OpAttach:
		return body(cmd, m.attach), true
	case wu.OpUserAdd:
		return body(cmd, m.userAdd), true
	case wu.OpTeamAdd:
		return body(cmd, m.teamAdd), true
	case wu.OpTeamJoin:
		return body(cmd, m.teamJoin), true
	case wu.OpHostRevoke:
		return body(cmd, m.hostRevoke), true
	case wu.OpUserSet:
		return body(cmd, m.userSet), true
	case wu.OpAccount:
		return body(cmd, m.account), true
	case wu.OpCompare:
		return body(cmd, m.compare), true
	}
	return nil, false
}

// attach makes a host for the user whose account key hashes to
// req.KeyHash. Attaching the same nkey again answers the same host, so a
// retried attach is harmless.
func (m *Machine) attach(_ string, req wu.Attach) (*wu.AttachReply, error) {
	uid, ok := m.ix.userByKey[req.KeyHash]
	if !ok {
		return nil, wu.Errorf(wu.CodeForbidden, "no user of this project has that account key: check it, or ask the project for one")
	}
	usr := m.st.Users[uid]
	rep := &wu.AttachReply{V: wu.WireVersion, User: usr.Name, Project: m.cfg.Project, SigningKey: m.cfg.SigningKey}
	if h, ok := m.ix.hostByNKey[req.NKey]; ok {
		id := h.ID
		if h.Revoked {
			return nil, errRevoked(id)
		}
		if h.User != uid {
			return nil, wu.Errorf(wu.CodeConflict, "this host's key is attached to another user: make a new key (remove the host's data directory) to attach it to yours")
		}
		rep.Host = id
		return rep, nil
	}
	id := ""
	for id == "" || m.st.Hosts[id] != nil {
		m.st.NextHost++
		id = "h" + strconv.FormatUint(m.st.NextHost, 10)
	}
	h := &host{ID: id, Info: m.compact(req.Host), User: uid, NKey: req.NKey, Created: m.st.Now, LastSeen: m.st.Now}
	m.st.Hosts[id] = h
	m.numberHost(h)
	m.ix.hostByNKey[req.NKey] = h
	m.rank(h)
	rep.Host = id
	return rep, nil
}

func (m *Machine) userAdd(_ string, req wu.UserAdd) (*wu.CreatedReply, error) {
	if _, taken := m.ix.userByName[req.Name]; taken {
		return nil, wu.Errorf(wu.CodeConflict, "there is already a user named %q", req.Name)
	}
	if _, taken := m.ix.userByKey[req.KeyHash]; taken {
		return nil, wu.Errorf(wu.CodeConflict, "that account key is taken: make up another")
	}
	tid := ""
	if req.Team != "" {
		var ok bool
		if tid, ok = m.ix.teamByName[req.Team]; !ok {
			return nil, wu.Errorf(wu.CodeNotFound, "no team named %q: create it first with `momonga-project team add`", req.Team)
		}
	}
	m.st.NextUser++
	u := &user{ID: "u" + strconv.FormatUint(m.st.NextUser, 10), Name: req.Name, Email: req.Email, KeyHash: req.KeyHash, Created: m.st.Now,
		Num: m.st.NextUser, XProject: req.CrossProjectID, Country: req.Country}
	if u.XProject == "" {
		u.XProject = derivedCrossProjectID(u.KeyHash)
	}
	u.XProject = strings.ToLower(u.XProject)
	m.st.Users[u.ID] = u
	m.ix.userByName[u.Name] = u.ID
	m.ix.userByKey[u.KeyHash] = u.ID
	m.indexUser(u)
	m.setTeam(u, tid)
	return &wu.CreatedReply{V: wu.WireVersion, ID: u.ID}, nil
}

func (m *Machine) teamAdd(_ string, req wu.TeamAdd) (*wu.CreatedReply, error) {
	if _, taken := m.ix.teamByName[req.Name]; taken {
		return nil, wu.Errorf(wu.CodeConflict, "there is already a team named %q", req.Name)
	}
	var founder *user
	if req.Founder != "" {
		uid, ok := m.ix.userByName[req.Founder]
		if !ok {
			return nil, wu.Errorf(wu.CodeNotFound, "no user named %q", req.Founder)
		}
		founder = m.st.Users[uid]
	}
	m.st.NextTeam++
	t := &team{ID: "t" + strconv.FormatUint(m.st.NextTeam, 10), Name: req.Name, Created: m.st.Now,
		Num: m.st.NextTeam, Type: req.Type, Country: req.Country, URL: req.URL, Description: req.Description}
	m.st.Teams[t.ID] = t
	m.ix.teamByName[t.Name] = t.ID
	m.indexTeam(t)
	if founder != nil {
		t.Founder = founder.ID
		if founder.Team == "" {
			m.setTeam(founder, t.ID)
		}
	}
	return &wu.CreatedReply{V: wu.WireVersion, ID: t.ID}, nil
}

func (m *Machine) teamJoin(_ string, req wu.TeamJoin) (*wu.Ack, error) {
	uid, ok := m.ix.userByName[req.User]
	if !ok {
		return nil, wu.Errorf(wu.CodeNotFound, "no user named %q", req.User)
	}
	tid := ""
	if req.Team != "" {
		if tid, ok = m.ix.teamByName[req.Team]; !ok {
			return nil, wu.Errorf(wu.CodeNotFound, "no team named %q", req.Team)
		}
	}
	m.setTeam(m.st.Users[uid], tid)
	return &wu.Ack{V: wu.WireVersion}, nil
}

// hostRevoke withdraws a host's credentials; its tasks go back to the queue
// at once instead of waiting for their leases to run out.
func (m *Machine) hostRevoke(_ string, req wu.HostRevoke) (*wu.Ack, error) {
	h := m.st.Hosts[req.Host]
	if h == nil {
		return nil, wu.Errorf(wu.CodeNotFound, "no host %q", req.Host)
	}
	if !h.Revoked {
		hosts := m.six.userHosts[h.User]
		if i := slices.Index(hosts, h); i >= 0 {
			m.six.userHosts[h.User] = slices.Delete(hosts, i, i+1)
		}
	}
	h.Revoked = true
	m.rank(h)
	m.setIdle(h, false)
	m.emit(HostRevoked{h.ID})
	var back []string
	for tid := range m.st.Assigned {
		if m.st.Tasks[tid].Host == h.ID {
			back = append(back, tid)
		}
	}
	sort.Strings(back)
	for _, tid := range back {
		t := m.st.Tasks[tid]
		m.release(t)
		m.setTaskState(t, wu.TaskUnsent)
		m.st.Retry = append(m.st.Retry, tid)
		m.queued(t)
	}
	return &wu.Ack{V: wu.WireVersion}, nil
}

// HostByNKey finds the host that authenticates with the public key nkey.
func (m *Machine) HostByNKey(nkey string) (wu.HostCredential, bool) {
	h, ok := m.ix.hostByNKey[nkey]
	if !ok {
		return wu.HostCredential{}, false
	}
	return wu.HostCredential{ID: h.ID, User: h.User, Revoked: h.Revoked}, true
}

// UserByKeyHash reports whether a user holds the account key with this
// hash, and which.
func (m *Machine) UserByKeyHash(h wu.Hash) (string, bool) {
	id, ok := m.ix.userByKey[h]
	return id, ok
}

// RevokedHosts lists the hosts whose credentials were withdrawn.
func (m *Machine) RevokedHosts() []string {
	var ids []string
	for _, id := range sortedKeys(m.st.Hosts) {
		if m.st.Hosts[id].Revoked {
			ids = append(ids, id)
		}
	}
	return ids
}

// Owner is who a host computes for: its user's and team's ids and names,
// "" where there is none.
type Owner struct {
	User, UserName, Team, TeamName string
}

// OwnerOf finds a host's owner; false for a host the project does not know.
func (m *Machine) OwnerOf(host string) (Owner, bool) {
	h := m.st.Hosts[host]
	if h == nil {
		return Owner{}, false
	}
	var o Owner
	if u := m.st.Users[h.User]; u != nil {
		o.User, o.UserName = u.ID, u.Name
		if t := m.st.Teams[u.Team]; t != nil {
			o.Team, o.TeamName = t.ID, t.Name
		}
	}
	return o, true
}
