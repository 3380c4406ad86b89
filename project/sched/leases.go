package sched

import (
	"container/heap"
	"time"
)

// leases finds the tasks out on hosts whose lease or deadline has passed
// without looking at every one of them on every tick, which took most of a
// tick once a few hundred thousand tasks were out. It is a heap of the times
// at which tasks may expire, derived from the state (rebuilt on Restore) and
// not part of it. An entry is never later than its task's expiry: renewing
// a lease leaves the entry early, and a task that leaves the assigned set
// leaves its entry behind; both are sorted out when the entry comes up.
type leases []leaseEntry

type leaseEntry struct {
	at   int64 // unix nanoseconds
	task string
}

func (l leases) Len() int           { return len(l) }
func (l leases) Less(i, j int) bool { return l[i].at < l[j].at }
func (l leases) Swap(i, j int)      { l[i], l[j] = l[j], l[i] }
func (l *leases) Push(x any)        { *l = append(*l, x.(leaseEntry)) }
func (l *leases) Pop() any {
	old := *l
	e := old[len(old)-1]
	old[len(old)-1] = leaseEntry{}
	*l = old[:len(old)-1]
	return e
}

// seenHeap is the active hosts by when each stops counting among them
// (capability.go), as leases is the tasks out: a host by pointer rather than
// by id, for a million hosts' size.
type seenHeap []seenEntry

type seenEntry struct {
	at int64 // unix nanoseconds
	h  *host
}

func (l seenHeap) Len() int           { return len(l) }
func (l seenHeap) Less(i, j int) bool { return l[i].at < l[j].at }
func (l seenHeap) Swap(i, j int)      { l[i], l[j] = l[j], l[i] }
func (l *seenHeap) Push(x any)        { *l = append(*l, x.(seenEntry)) }
func (l *seenHeap) Pop() any {
	old := *l
	e := old[len(old)-1]
	old[len(old)-1] = seenEntry{}
	*l = old[:len(old)-1]
	return e
}

// expiry is when t is lost: its lease or its deadline, whichever is first.
func expiry(t *task) time.Time {
	if t.Deadline.Before(t.LeaseUntil) {
		return t.Deadline
	}
	return t.LeaseUntil
}

// watch puts t, just assigned, on the heap.
func (m *Machine) watch(t *task) {
	heap.Push(&m.leases, leaseEntry{at: expiry(t).UnixNano(), task: t.ID})
}

// expired lists the assigned tasks whose lease or deadline is before now,
// each once, in no particular order; tasks that come up early go back on
// the heap.
func (m *Machine) expired(now time.Time) []string {
	var lost []string
	var seen map[string]bool
	for len(m.leases) > 0 && m.leases[0].at < now.UnixNano() {
		e := heap.Pop(&m.leases).(leaseEntry)
		t := m.st.Tasks[e.task]
		if t == nil || !m.st.Assigned[e.task] || seen[e.task] {
			continue
		}
		if seen == nil {
			seen = map[string]bool{}
		}
		seen[e.task] = true
		if now.After(expiry(t)) {
			lost = append(lost, e.task)
		} else {
			m.watch(t)
		}
	}
	return lost
}

// rewatch rebuilds the heap from the assigned tasks.
func (m *Machine) rewatch() {
	m.leases = make(leases, 0, len(m.st.Assigned))
	for id := range m.st.Assigned {
		t := m.st.Tasks[id]
		m.leases = append(m.leases, leaseEntry{at: expiry(t).UnixNano(), task: id})
	}
	heap.Init(&m.leases)
}
