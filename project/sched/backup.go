package sched

import (
	"math/bits"
	"slices"

	wu "github.com/momonga-project/momonga/workunits"
)

// Backup copies: earliest finish for a task already out. A host that asks
// for work and finds none it may take is given a second replica of a task
// out on a slower host that has had it twice as long as it was expected to
// take, when it would finish the task sooner than the late host is still
// expected to take. That host was slower than anything
// known when it took the task said — never measured, throttled more than
// it reports, or gone without a word — and the unit is whichever result
// comes first: quorum 1 is met by the first, and the other replica is
// cancelled (its host is told to abort at its next beat). Google's
// MapReduce does the same with its backup tasks near the end of a job;
// here too it happens only when the asking host has nothing else to do.
//
// Only units computed once (replication and quorum 1, not adaptive) get a
// backup, and one at a time. How long the late host still needs is
// estimated from its progress reports (the time so far, scaled by what is
// left), or, without any, as long again as it took so far.

// lateLooked bounds the late hosts a request looks at, soonest due first.
const lateLooked = 64

// noteLate keeps e, whose host is late, among the late hosts, by when each
// was due, then by id.
func (m *Machine) noteLate(e altEntry) {
	if len(m.ix.held[e.h.ID]) == 0 {
		return
	}
	late := m.ix.late
	i, found := slices.BinarySearchFunc(late, e, cmpEntries)
	if !found {
		m.ix.late = slices.Insert(late, i, e)
	}
}

func cmpEntries(x, y altEntry) int {
	switch {
	case x.before(y):
		return -1
	case y.before(x):
		return 1
	}
	return 0
}

// pickBackup gives h, which found nothing else, a backup replica of a task
// of a late slower host, through take; it reports whether it did.
func (m *Machine) pickBackup(h *host, take func(*task, *unit) bool) bool {
	if h.bucket == 0 {
		return false
	}
	now := m.st.Now.UnixMilli()
	grace := m.finishGrace()
	// Every late host leaves its bucket's heap for the late list: they are
	// at the tops, the heaps being by when each is due.
	for w, word := range m.ix.alts.used {
		for word != 0 {
			b := w*64 + bits.TrailingZeros64(word)
			word &= word - 1
			m.firstAlt(b, now, grace)
		}
	}
	var (
		best     *task
		bestUnit *unit
	)
	kept := m.ix.late[:0]
	looked := 0
	for _, e := range m.ix.late {
		l := e.h
		if !m.current(e, int(l.bucket)-1) || len(m.ix.held[l.ID]) == 0 {
			continue // no longer late, or done
		}
		kept = append(kept, e)
		if looked >= lateLooked || l == h || l.bucket >= h.bucket {
			continue
		}
		looked++
		for _, t := range m.ix.held[l.ID] {
			u := m.st.Units[t.Unit]
			if !m.backupFits(u, t, l, h, now) {
				continue
			}
			if best == nil || t.Sent.Before(best.Sent) || t.Sent.Equal(best.Sent) && compareTasks(t.ID, best.ID) < 0 {
				best, bestUnit = t, u
			}
		}
	}
	clear(m.ix.late[len(kept):])
	m.ix.late = kept
	if best == nil {
		return false
	}
	nt := m.addTask(bestUnit, true)
	if !take(nt, bestUnit) {
		return false // it waits in the queue of tasks to send again, like any
	}
	m.available-- // taken at once: nobody else needs to hear of it
	return true
}

// backupFits reports whether h may get a backup of t, out on host l: a
// unit computed once, with no other replica live, out for twice as long as
// l was expected to take over it, and that h would finish before l is
// expected to.
func (m *Machine) backupFits(u *unit, t *task, l, h *host, now int64) bool {
	if u.State != wu.WorkUnitPending || u.Quorum != 1 || u.Replication != 1 || u.Adaptive ||
		len(u.Tasks) >= u.MaxTasks || m.live(u) != 1 || m.fpops(u) <= 0 {
		return false
	}
	elapsed := now - t.Sent.UnixMilli()
	if float64(elapsed) < float64(2*float64(float64(t.Expect)*dcf(l))) {
		return false
	}
	left := float64(elapsed)
	if f := t.Fraction; f > 0 && f < 1 {
		left = float64(float64(left*(1-f)) / f)
	}
	mine := float64(float64(m.expect(u, h)) * dcf(h))
	return mine < left && m.feasible(u, h) && !m.holdsReplica(h, u, "")
}
