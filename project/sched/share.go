package sched

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"

	wu "github.com/momonga-project/momonga/workunits"
)

// Shared results (DESIGN §8): a work unit whose computation — the app's
// module, the arguments and the stdin blob — is one the scheduler computes
// or has validated for another unit is not computed again. It takes that
// unit's canonical result at once if there is one, and otherwise waits
// for it, with no tasks of its own; the unit that computes keeps its own
// replication and quorum. A submission may opt out (Submit.NoShare). If
// the computing unit ends in error, the units waiting for it end in error
// too (the same computation would fail the same way); if it is cancelled,
// the first of them computes in its place.

// shareKey names u's computation: the SHA-256 of its app's hash, its
// arguments and its stdin, each with its length.
func shareKey(u *unit) wu.Hash {
	d := sha256.New()
	field := func(s string) {
		d.Write(binary.AppendUvarint(nil, uint64(len(s))))
		d.Write([]byte(s))
	}
	field(string(u.AppHash))
	d.Write(binary.AppendUvarint(nil, uint64(len(u.Args))))
	for _, a := range u.Args {
		field(a)
	}
	field(string(u.Stdin))
	return wu.Hash(hex.EncodeToString(d.Sum(nil)))
}

// start makes a new unit compute, or share another's computation.
func (m *Machine) start(u *unit) {
	if !u.NoShare {
		key := shareKey(u)
		if p := m.st.Units[m.st.Shares[key]]; p != nil && p.ID != u.ID {
			switch p.State {
			case wu.WorkUnitValid:
				u.SharedWith = p.ID
				m.takeResult(u, p)
				return
			case wu.WorkUnitPending:
				u.SharedWith = p.ID
				p.Followers = append(p.Followers, u.ID)
				return
			}
		}
		m.st.Shares[key] = u.ID
	}
	m.compute(u)
}

// compute gives u its first replicas.
func (m *Machine) compute(u *unit) {
	first := u.Replication
	if u.Adaptive {
		// One replica at first: the host it goes to decides the rest.
		first = 1
	}
	m.sizeRank(u)
	for r := 0; r < first; r++ {
		m.addTask(u, false)
	}
}

// takeResult makes u valid with p's canonical result.
func (m *Machine) takeResult(u, p *unit) {
	u.Canonical, u.OutputSize = p.Canonical, p.OutputSize
	m.finish(u, wu.WorkUnitValid, "")
}

// settleFollowers passes the outcome of u to the units waiting for it.
func (m *Machine) settleFollowers(u *unit) {
	followers := u.Followers
	u.Followers = nil
	if u.State != wu.WorkUnitValid && !u.NoShare && m.st.Shares[shareKey(u)] == u.ID {
		delete(m.st.Shares, shareKey(u))
	}
	if len(followers) == 0 {
		return
	}
	switch u.State {
	case wu.WorkUnitValid:
		for _, id := range followers {
			m.takeResult(m.st.Units[id], u)
		}
	case wu.WorkUnitError:
		for _, id := range followers {
			m.finish(m.st.Units[id], wu.WorkUnitError, "the unit it shares its computation with, "+u.ID+", failed: "+u.Reason)
		}
	case wu.WorkUnitCancelled:
		// The first one waiting computes, the others wait for it.
		next := m.st.Units[followers[0]]
		next.SharedWith = ""
		next.Followers = followers[1:]
		for _, id := range next.Followers {
			m.st.Units[id].SharedWith = next.ID
		}
		m.st.Shares[shareKey(next)] = next.ID
		m.compute(next)
	}
}

// unfollow takes u out of the followers of the unit it waits for.
func (m *Machine) unfollow(u *unit) {
	p := m.st.Units[u.SharedWith]
	if p == nil {
		return
	}
	for i, id := range p.Followers {
		if id == u.ID {
			p.Followers = append(p.Followers[:i:i], p.Followers[i+1:]...)
			return
		}
	}
}
