package sched

import (
	"math"
	"math/bits"
	"slices"
	"strings"
	"time"
)

// Earliest finish (capability-aware policy): before a task goes to a host,
// the scheduler asks whether a faster host that is about to be free would
// finish it sooner than this one, given what each holds already. If one
// would, the task is left for it: a slow host does not take the last
// mid-sized task of a batch while the fast host that would finish it in a
// tenth of the time is seconds from free. A busy fast host does not starve
// the slow ones: its backlog counts, and so does the waiting work at least
// as large as the task, which the faster hosts take first; while much
// waits, the slow host's own estimate is the sooner and it takes its share.
//
// The alternatives are kept per bucket of the host histogram (a quarter of
// a binary order of magnitude of speed), each bucket a heap of its hosts by
// when each is expected to be free: a host holding tasks when the last of
// them is due back (sent, plus its expected return corrected by the host's
// DCF); a host holding none when it is expected to ask again (its last
// request plus the retry interval). Asking means looking at the earliest
// of each faster bucket that holds hosts: a few dozen at most.
//
// A host that is not where its estimate says — due back, or due to ask,
// longer ago than the retry interval — holds nothing back: its tasks are
// late, so its estimate is wrong (it was never measured, or it lied), or
// it is gone. A task is therefore withheld from a free host at most until
// the alternative's estimated start and a retry interval, and the host
// refused is told to ask again then. (A beat would be too long: a project
// beating hourly would hold the last tasks of a batch back for an hour
// behind a host whose benchmark was optimistic.) Hosts that lose or fail
// many tasks are no alternatives at all. Everything is computed from the
// state and the entry's time, with ties broken by host id, so every member
// decides alike; the heaps are derived, rebuilt on Restore.

// finishGrace is how late beyond its estimate a host may be and still hold
// work back: the retry interval, at least this.
const finishGrace = time.Second

// altHeap is the hosts of one speed bucket by when each is expected to be
// free, then by id. An entry is stale once its host's free time or bucket
// moved (a newer entry stands for it then); stale entries and late hosts
// leave when they come to the top. Nothing of the heap is kept in the host
// but its free time, which the state alone decides, so a restored machine,
// whose heaps are built in another order, has hosts equal to the one that
// ran on and picks the same.
type altHeap []altEntry

type altEntry struct {
	free int64 // unix milliseconds
	h    *host
}

// before orders the heap: the soonest free first, then by id.
func (e altEntry) before(o altEntry) bool {
	if e.free != o.free {
		return e.free < o.free
	}
	return strings.Compare(e.h.ID, o.h.ID) < 0
}

// push and pop are container/heap's, written out for the entry type: that
// package's interface would allocate for every entry pushed and popped, on
// the path of every work request.
func (a *altHeap) push(e altEntry) {
	*a = append(*a, e)
	q := *a
	for i := len(q) - 1; i > 0; {
		p := (i - 1) / 2
		if !q[i].before(q[p]) {
			break
		}
		q[i], q[p] = q[p], q[i]
		i = p
	}
}

func (a *altHeap) pop() {
	q := *a
	n := len(q) - 1
	q[0] = q[n]
	q[n] = altEntry{}
	q = q[:n]
	for i := 0; ; {
		l := 2*i + 1
		if l >= n {
			break
		}
		c := l
		if r := l + 1; r < n && q[r].before(q[l]) {
			c = r
		}
		if !q[c].before(q[i]) {
			break
		}
		q[i], q[c] = q[c], q[i]
		i = c
	}
	*a = q
}

// alternatives is the hosts that may hold work back, by speed bucket, and
// which buckets hold any entry; and the work waiting for a host, by size
// bucket, in millions of floating-point operations (an integer, so that the
// sum is the same in whatever order it was made).
type alternatives struct {
	heaps   [buckets]altHeap
	used    [buckets / 64]uint64
	waiting [buckets]int64
}

// waitWork counts t's unit in the work waiting (sign 1: t waits for a host
// from now on; -1: no longer). Only a unit's own estimate counts: what its
// app was measured to need changes, and the sum must not.
func (m *Machine) waitWork(t *task, sign int64) {
	if u := m.st.Units[t.Unit]; u != nil && u.FPOps > 0 {
		m.ix.alts.waiting[bucket(u.FPOps)] += sign * int64(u.FPOps/1e6)
	}
}

// lowest holds each bucket's lowest speed, 2^(b/4): made with Ldexp from
// the four roots 2^(k/4), exact on every CPU.
var lowest = func() (l [buckets]float64) {
	roots := [4]float64{1, 1.189207115002721, 1.4142135623730951, 1.681792830507429}
	for b := range l {
		l[b] = math.Ldexp(roots[b%4], b/4)
	}
	return l
}()

// ahead is how long, in milliseconds, the hosts faster than bucket own
// take over the work waiting that is at least u's size, which they take
// before u: at the lowest speed of their buckets and one core each, which
// is longer than they take, so that a slow host is refused work only when
// little waits.
func (m *Machine) ahead(u *unit, own int) int64 {
	work := -int64(u.FPOps / 1e6) // u's own task waits too
	for _, w := range m.ix.alts.waiting[bucket(u.FPOps):] {
		work += w
	}
	if work <= 0 {
		return 0
	}
	var speed float64
	for b := own + 1; b < buckets; b++ {
		if n := m.ix.hosts.n[b]; n > 0 {
			speed += float64(float64(n) * lowest[b])
		}
	}
	if speed <= 0 {
		return 0
	}
	return int64(min(float64(float64(work)*1e9)/speed, 1e15))
}

// freeAt is when h is expected to be free, in unix milliseconds: the
// latest of its tasks due back, at its measured speed, or its next request
// if it holds none.
func (m *Machine) freeAt(h *host) int64 {
	held := m.ix.held[h.ID]
	if len(held) == 0 {
		return h.LastSeen.Add(m.cfg.Retry).UnixMilli()
	}
	var free int64
	for _, t := range held {
		free = max(free, dueBack(t, h))
	}
	return free
}

// dueBack is when t is expected back from h, in unix milliseconds: sent,
// plus its expected run time corrected by h's DCF.
func dueBack(t *task, h *host) int64 {
	return t.Sent.UnixMilli() + int64(float64(float64(t.Expect)*dcf(h)))
}

// placeAlt works out again when h is expected to be free and puts it among
// the alternatives of its speed bucket at that time: after any change to
// what it holds, its speed, its last request while it holds nothing, or
// whether it counts among the active hosts.
func (m *Machine) placeAlt(h *host) { m.placeAltAt(h, m.freeAt(h)) }

// placeAltAt puts h among the alternatives, free at free.
func (m *Machine) placeAltAt(h *host, free int64) {
	h.free = free
	if h.bucket == 0 || h.Revoked || m.st.Hosts[h.ID] != h {
		return
	}
	b := int(h.bucket - 1)
	m.ix.alts.heaps[b].push(altEntry{free: h.free, h: h})
	m.ix.alts.used[b/64] |= 1 << (b % 64)
	// Entries are taken out as they come to the top: here too, so that a
	// bucket no slower host looks at does not grow.
	m.firstAlt(b, m.st.Now.UnixMilli(), m.finishGrace())
}

// current reports whether e stands for its host in bucket b.
func (m *Machine) current(e altEntry, b int) bool {
	h := e.h
	return h.free == e.free && int(h.bucket) == b+1 && !h.Revoked && m.st.Hosts[h.ID] == h
}

// firstAlt is the host of bucket b that is expected to be free first and is
// not late by more than grace (ms). Hosts late beyond it leave the heap:
// they come back at their next change (the time alone only makes them
// later).
func (m *Machine) firstAlt(b int, now, grace int64) *host {
	al := &m.ix.alts
	for len(al.heaps[b]) > 0 {
		e := al.heaps[b][0]
		if m.current(e, b) {
			if e.free+grace >= now {
				return e.h
			}
			m.noteLate(e) // for a backup copy (backup.go)
		}
		al.heaps[b].pop()
	}
	al.used[b/64] &^= 1 << (b % 64)
	return nil
}

func (m *Machine) finishGrace() int64 { return max(m.cfg.Retry, finishGrace).Milliseconds() }

// sooner reports whether another host would finish u sooner than h, each
// with what it holds: then u is left for it. The time until that host's
// estimated start is kept for the reply (withheld).
func (m *Machine) sooner(u *unit, h *host) bool {
	if h.bucket == 0 || m.fpops(u) <= 0 {
		return false // nothing known to compare
	}
	mine := float64(float64(m.expect(u, h)) * dcf(h))
	now := m.st.Now.UnixMilli()
	grace := m.finishGrace()
	own := int(h.bucket - 1)
	// A faster host takes the larger work waiting first, and the work of
	// u's size ahead of it: then u. Computed once, when an alternative is
	// found, as most requests find none.
	queue := int64(-1)
	// The faster buckets, from h's own up: the first alternative that
	// beats h decides.
	for w := own / 64; w < len(m.ix.alts.used); w++ {
		word := m.ix.alts.used[w]
		if w == own/64 {
			word &^= (uint64(2) << (own % 64)) - 1 // buckets up to h's own
		}
		for word != 0 {
			b := w*64 + bits.TrailingZeros64(word)
			word &= word - 1
			a := m.firstAlt(b, now, grace)
			if a == nil || !m.reliable(a) {
				continue
			}
			if queue < 0 {
				queue = m.ahead(u, own)
			}
			start := max(a.free-now, 0) + queue
			if float64(start)+float64(float64(m.estimate(u, a))*dcf(a)) < mine && !m.holdsReplica(a, u, "") {
				if m.withheld == 0 || start < m.withheld {
					m.withheld = max(start, 1)
				}
				return true
			}
		}
	}
	return false
}

// retryAfter is how long a host whose work request went empty waits before
// it asks again: until the host a task was left for is expected to start
// it, if that is later than the usual wait.
func (m *Machine) retryAfter() time.Duration {
	return max(m.cfg.Retry, time.Duration(m.withheld)*time.Millisecond)
}

// holdFor keeps the list of t's host's tasks, which t joined, and the
// host's place among the alternatives; unholdFor undoes it.
func (m *Machine) holdFor(t *task) {
	held := append(m.ix.held[t.Host], t)
	m.ix.held[t.Host] = held
	h := m.st.Hosts[t.Host]
	switch {
	case h == nil:
	case len(held) > 1:
		// h.free is the latest of its other tasks due back (placeAlt
		// works it out again whenever h's speed changes): t moves it
		// only if it is due later, and no task h holds is read again.
		if due := dueBack(t, h); due > h.free {
			m.placeAltAt(h, due)
		}
	default:
		m.placeAlt(h)
	}
}

func (m *Machine) unholdFor(t *task) {
	held := m.ix.held[t.Host]
	if i := slices.Index(held, t); i >= 0 {
		held = slices.Delete(held, i, i+1)
	}
	if len(held) == 0 {
		delete(m.ix.held, t.Host)
	} else {
		m.ix.held[t.Host] = held
	}
	if h := m.st.Hosts[t.Host]; h != nil {
		m.placeAlt(h)
	}
}
