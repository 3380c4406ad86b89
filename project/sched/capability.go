package sched

import (
	"container/heap"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"

	wu "github.com/momonga-project/momonga/workunits"
)

// Capability-aware scheduling (DESIGN §8). A host is ranked by its speed as
// the scheduler judges it: its floating-point benchmark, slowed by its
// throttle (the share of the time it lets tasks run), corrected by what it
// was measured to do (DCF, BOINC's duration correction factor: how much
// longer than estimated its results took to come back) and discounted for
// the tasks it lost or got wrong. Its class is the share of the other
// active hosts (seen lately) that are slower, cut into wu.SizeClasses; the
// fastest are always in the top class. A work unit's class is the share of
// the units computed so far that are smaller, by estimated size (fpops). A
// host gets work of its own class first, then smaller, never larger, so
// heavy work goes to fast, reliable hosts and a slow one is never the
// straggler that holds a batch back. A task is never sent to a host that
// would not finish it by its deadline, given what the host holds already,
// and a host holds at most MaxTasksPerCore tasks per core. Before any of
// that, a host is given work on the input blobs it holds, as far as the
// scheduler gave them to it (locality).
//
// Everything here is computed from the state alone, and the numbers that
// decisions turn on are integers or come from exact operations, so every
// member decides alike.

// Scheduling policies (Config.Policy).
const (
	// PolicyCapability matches work to hosts as above: the default.
	PolicyCapability = "capability"
	// PolicyFCFS gives every host the oldest task waiting, whatever it
	// is: how momonga scheduled before, kept to compare with.
	PolicyFCFS = "fcfs"
)

const (
	// window is how many waiting tasks a work request looks at, from the
	// front of the queue, to choose from; a host none of them fits looks
	// at a few windows more.
	window     = 64
	moreWindow = 4
	// givenKept is how many input blobs a host's record of what it was
	// given keeps.
	givenKept = 32
	// dcfMin and dcfMax bound the duration correction factor.
	dcfMin, dcfMax = 0.01, 1e4
	// buckets is the resolution of the speed and size histograms: a
	// quarter of a binary order of magnitude each, up to 2^64.
	buckets = 256
)

// bucket places a positive value in the histograms: four buckets per power
// of two. It uses only exact operations (Frexp and comparisons with
// constants), so it is the same on every CPU.
func bucket(v float64) int {
	if !(v > 1) {
		return 0
	}
	frac, exp := math.Frexp(v) // v = frac · 2^exp, frac in [0.5, 1)
	q := 0
	// 2^(-1+k/4) for k = 1, 2, 3.
	for _, edge := range [...]float64{0.5946035575013605, 0.7071067811865476, 0.8408964152537145} {
		if frac >= edge {
			q++
		}
	}
	return min(max(4*(exp-1)+q, 0), buckets-1)
}

// histogram counts values by bucket, and knows the class of each bucket:
// which of SizeClasses equal shares of the values counted holds the values
// below it.
type histogram struct {
	n       [buckets]int
	total   int
	classes [buckets]uint8 // valid unless stale
	stale   bool
}

func (h *histogram) add(b, d int) {
	h.n[b] += d
	h.total += d
	h.stale = true
}

// hostClass is the class of a host in bucket b among the hosts counted:
// the share of the others in lower buckets, or the top class for a host
// none is faster than. Worked out afresh: queries call it too.
func (h *histogram) hostClass(b int) int {
	below, same := 0, h.n[b]
	for _, n := range h.n[:b] {
		below += n
	}
	if below+same >= h.total || h.total <= 1 {
		return wu.SizeClasses - 1
	}
	return min(below*wu.SizeClasses/(h.total-1), wu.SizeClasses-1)
}

// rank is the class of the values in bucket b, worked out afresh: for
// queries, which must not change the machine.
func (h *histogram) rank(b int) int {
	if h.total <= 0 {
		return 0
	}
	below := 0
	for _, n := range h.n[:b] {
		below += n
	}
	return min(below*wu.SizeClasses/h.total, wu.SizeClasses-1)
}

// class is the class of the values in bucket b, from the classes kept
// (worked out again after a change): for Apply.
func (h *histogram) class(b int) int {
	if h.stale {
		below := 0
		for i, n := range h.n {
			c := 0
			if h.total > 0 {
				c = min(below*wu.SizeClasses/h.total, wu.SizeClasses-1)
			}
			h.classes[i] = uint8(c)
			below += n
		}
		h.stale = false
	}
	return int(h.classes[b])
}

// flops is the host's floating-point speed when it runs tasks: its
// benchmark (or the assumed one), times its throttle.
func (m *Machine) flops(h *host) float64 {
	f := h.Info.FLOPS
	if f <= 0 {
		f = m.cfg.HostFLOPS
	}
	if t := h.Info.Throttle; t > 0 && t < 1 {
		f = float64(f * t)
	}
	return f
}

func dcf(h *host) float64 {
	if h.DCF <= 0 {
		return 1
	}
	return h.DCF
}

// speed is the host's rank speed: its flops corrected by what it was
// measured to do, discounted by its share of lost and invalid results.
func (m *Machine) speed(h *host) float64 {
	valid, bad := int(h.Valid), int(h.Lost)+int(h.Invalid)
	reliability := float64(valid+1) / float64(valid+bad+1)
	return float64(float64(m.flops(h)/dcf(h)) * reliability)
}

// rank puts h in the host histogram at its current speed, or takes it out:
// only active hosts count (not revoked, seen within activeWindow), so that
// hosts gone for good do not hold the ones that stay out of the top class.
func (m *Machine) rank(h *host) {
	defer m.placeAlt(h)
	counted := h.bucket > 0
	if counted {
		m.ix.hosts.add(int(h.bucket-1), -1)
		h.bucket = 0
	}
	if h.Revoked || !m.active(h) {
		return
	}
	b := bucket(m.speed(h))
	h.bucket = int32(b + 1)
	m.ix.hosts.add(b, 1)
	if !counted {
		heap.Push(&m.ix.seen, seenEntry{at: h.LastSeen.Add(m.activeWindow()).UnixNano(), h: h})
	}
}

// activeWindow is how long a host counts among the active ones after it
// was last seen.
func (m *Machine) activeWindow() time.Duration { return max(4*m.cfg.Lease, time.Hour) }

func (m *Machine) active(h *host) bool { return !h.LastSeen.Add(m.activeWindow()).Before(m.st.Now) }

// seenNow notes a request from h: a host that had stopped counting among
// the active ones counts again.
func (m *Machine) seenNow(h *host) {
	h.LastSeen = m.st.Now
	if h.bucket == 0 {
		m.rank(h)
	} else if m.ix.running[h.ID] == 0 {
		m.placeAlt(h) // when it asks next moved
	}
}

// retire takes the hosts not seen within activeWindow out of the host
// histogram; a host seen since goes back on the heap for later.
func (m *Machine) retire(now time.Time) {
	for len(m.ix.seen) > 0 && m.ix.seen[0].at < now.UnixNano() {
		h := heap.Pop(&m.ix.seen).(seenEntry).h
		if h.bucket == 0 || m.st.Hosts[h.ID] != h {
			continue
		}
		if m.active(h) {
			heap.Push(&m.ix.seen, seenEntry{at: h.LastSeen.Add(m.activeWindow()).UnixNano(), h: h})
			continue
		}
		m.ix.hosts.add(int(h.bucket-1), -1)
		h.bucket = 0
		m.placeAlt(h)
	}
}

// hostClass is h's class among the active hosts: the share of the others
// that are slower; the fastest (none faster) are in the top class.
func (m *Machine) hostClass(h *host) int {
	return m.ix.hosts.hostClass(bucket(m.speed(h)))
}

// computed reports whether u is (or was) computed, rather than sharing
// another's computation: the units whose sizes make the size classes. They
// stay counted once decided, so that a unit's class does not rise as the
// smaller ones are done: a slow host left with nothing of its class waits
// rather than take heavy work a faster one would finish sooner.
func computed(u *unit) bool { return u.SharedWith == "" }

// sizeRank counts u, which begins to compute, in the size histogram.
func (m *Machine) sizeRank(u *unit) { m.ix.sizes.add(bucket(u.FPOps), 1) }

// fpops is a unit's estimated size: its own estimate, or what units of its
// app were measured to need; 0 when nothing is known.
func (m *Machine) fpops(u *unit) float64 {
	if u.FPOps > 0 {
		return u.FPOps
	}
	return m.st.AppFPOps[u.App]
}

// estimate is how long u runs on h, in milliseconds, at h's flops (no
// correction): 0 for a unit of unknown size.
func (m *Machine) estimate(u *unit, h *host) int64 {
	f := m.fpops(u)
	if f <= 0 {
		return 0
	}
	return int64(min(float64(f/m.flops(h))*1000, 1e15))
}

func cores(h *host) int64 { return int64(max(h.Info.CPUs, 1)) }

// limit is how many tasks h may hold at once.
func (m *Machine) limit(h *host) int {
	if m.cfg.MaxTasksPerCore < 0 {
		return math.MaxInt
	}
	return m.cfg.MaxTasksPerCore * int(cores(h))
}

// expect is when a task of u sent to h now would be back, in milliseconds
// from now, at h's flops: the tasks it holds, spread over its cores, and
// then u's own run.
func (m *Machine) expect(u *unit, h *host) int64 {
	return m.ix.backlog[h.ID]/cores(h) + m.estimate(u, h)
}

// feasible reports whether h, as it was measured to do, would report u
// before u's deadline.
func (m *Machine) feasible(u *unit, h *host) bool {
	e := m.expect(u, h)
	if e == 0 {
		return true
	}
	return float64(float64(e)*dcf(h)) <= float64(u.Deadline*1000)
}

// hold counts t, just assigned to its host, against the host: its running
// tasks and backlog; release undoes it when t leaves the assigned set.
func (m *Machine) hold(t *task) {
	if m.st.Assigned[t.ID] {
		return // counted already: the counts must stay what a restore makes of them
	}
	m.st.Assigned[t.ID] = true
	m.ix.running[t.Host]++
	m.ix.backlog[t.Host] += t.Est
	m.holdFor(t)
	m.watch(t)
}

func (m *Machine) release(t *task) {
	if !m.st.Assigned[t.ID] {
		return
	}
	delete(m.st.Assigned, t.ID)
	if m.ix.running[t.Host]--; m.ix.running[t.Host] <= 0 {
		delete(m.ix.running, t.Host)
	}
	if m.ix.backlog[t.Host] -= t.Est; m.ix.backlog[t.Host] == 0 {
		delete(m.ix.backlog, t.Host)
	}
	m.unholdFor(t)
}

// measure learns from a successful report of t by h: h's DCF and, for a
// unit of unknown size, what units of its app need. (Its turnaround is kept
// by noteReported, for every report.)
func (m *Machine) measure(t *task, u *unit, h *host, cpuSeconds float64) {
	if t.Sent.IsZero() {
		return
	}
	took := m.st.Now.Sub(t.Sent)
	h.Measured++
	if t.Expect > 0 {
		// BOINC's rule: up at once, down slowly. Time moves in ticks, so
		// a turnaround shorter than the tick is not a measurement.
		ratio := float64(took.Milliseconds()) / float64(t.Expect)
		if took >= time.Second {
			switch d := dcf(h); {
			case ratio > d:
				h.DCF = min(ratio, dcfMax)
			default:
				h.DCF = max(float64(0.9*d)+float64(0.1*ratio), dcfMin)
			}
		}
	}
	if u.FPOps <= 0 && cpuSeconds > 0 {
		f := float64(cpuSeconds * m.flops(h))
		if h.Info.Throttle > 0 && h.Info.Throttle < 1 {
			// CPU time runs at the benchmark's speed, throttled or not.
			f = float64(f / h.Info.Throttle)
		}
		if old := m.st.AppFPOps[u.App]; old > 0 {
			f = float64(0.8*old) + float64(0.2*f)
		}
		m.st.AppFPOps[u.App] = f
	}
	m.rank(h)
}

// give records that h was given a task of u: its input blob joins what h is
// believed to hold.
func give(h *host, u *unit) {
	if u.Stdin == "" {
		return
	}
	if i := slices.Index(h.Given, u.Stdin); i >= 0 {
		h.Given = slices.Delete(h.Given, i, i+1)
	}
	h.Given = slices.Insert(h.Given, 0, u.Stdin)
	if len(h.Given) > givenKept {
		h.Given = h.Given[:givenKept]
	}
}

// held is what a host's report of its cache is worth: the blobs it says it
// holds that the scheduler gave it. A host that claims others gains
// nothing by it.
func held(h *host, cache []wu.Hash) []wu.Hash {
	var out []wu.Hash
	for _, c := range cache {
		if slices.Contains(h.Given, c) && !slices.Contains(out, c) {
			out = append(out, c)
		}
	}
	return out
}

// waiting reports whether t still waits for a host.
func waiting(t *task) bool { return t != nil && t.State == wu.TaskUnsent }

// pickCapable gives h up to n tasks (the policy above), through assign,
// which checks that a task may go to h and gives it.
func (m *Machine) pickCapable(h *host, n int, cache []wu.Hash, assign func(*task, *unit) bool) {
	got := 0
	take := func(t *task, u *unit) bool {
		if got < n && m.feasible(u, h) && !m.sooner(u, h) && assign(t, u) {
			got++
			return true
		}
		return false
	}
	// Locality: work on the inputs h holds.
	for _, b := range held(h, cache) {
		// Out of the index while it is read: a task given may make a
		// replica that joins it.
		ids := m.ix.byBlob[b]
		delete(m.ix.byBlob, b)
		kept := ids[:0]
		for _, id := range ids {
			if t := m.st.Tasks[id]; waiting(t) && !take(t, m.st.Units[t.Unit]) {
				kept = append(kept, id)
			}
		}
		added := m.ix.byBlob[b]
		m.setByBlob(b, kept)
		for _, id := range added {
			m.index(b, id)
		}
	}
	// Tasks that must go again come next, to hosts that lose few.
	if got < n && m.reliable(h) {
		m.st.Retry = m.pickFrom(m.st.Retry, h, &got, n, take)
	}
	if got < n {
		m.st.Unsent = m.pickFrom(m.st.Unsent, h, &got, n, take)
	}
	if got == 0 && n > 0 {
		m.pickBackup(h, take)
	}
}

// reliable reports whether h has lost or failed no more than a third of
// its tasks.
func (m *Machine) reliable(h *host) bool {
	bad := int(h.Lost) + int(h.Invalid)
	return 3*bad <= int(h.Valid)+bad
}

// pickFrom takes tasks for h from queue q until *got reaches n, and returns
// the queue without the tasks at its front that no longer wait. It looks at
// a window of the tasks waiting at the front and takes those of h's class
// first, then of the nearest classes below, then above, each in queue
// order; a window with nothing for h gives way to the next, a few times.
func (m *Machine) pickFrom(q []string, h *host, got *int, n int, take func(*task, *unit) bool) []string {
	class := m.hostClass(h)
	lo, hi, any := m.waitingClasses()
	switch {
	case !any:
		// Nothing in q waits any more.
		return q[:0]
	case lo > class:
		// Nothing waits that h may take: it would read every window in
		// vain.
		return q
	case lo == hi && lo < class:
		// Every waiting task is of one class below h's: the nearest, so
		// they go in queue order, as tasks of h's own class do.
		class = lo
	}
	sc := &m.picked
	sc.cands = sc.cands[:0] // the tasks read that may still wait, in queue order
	i := 0
	for w := 0; w < moreWindow && *got < n && i < len(q); w++ {
		before := *got
		sc.lows = sc.lows[:0]
		// One pass: h's own class is taken as it comes, and the reading
		// stops once h has all it asked for; smaller work waits for the
		// window's end.
		for read := 0; i < len(q) && read < window && *got < n; i++ {
			t := m.st.Tasks[q[i]]
			if !waiting(t) {
				continue
			}
			read++
			u := m.st.Units[t.Unit]
			switch c := m.ix.sizes.class(bucket(u.FPOps)); {
			case c == class:
				if take(t, u) {
					continue
				}
			case c < class:
				sc.lows = append(sc.lows, lower{t, u, c})
			}
			sc.cands = append(sc.cands, q[i])
		}
		slices.SortStableFunc(sc.lows, func(a, b lower) int { return b.class - a.class })
		for _, l := range sc.lows {
			if *got >= n {
				break
			}
			// A task may be queued twice (lost twice): taken once.
			if waiting(l.t) {
				take(l.t, l.u)
			}
		}
		if *got > before {
			break
		}
	}
	// What was read of the queue holds only cands that may still wait:
	// pack them at its end and drop the rest, so the queue shrinks as it is
	// read.
	q = q[i-len(sc.cands):]
	copy(q, sc.cands)
	clear(sc.lows)
	return q
}

// pickScratch is what pickFrom reads into, kept between requests so that
// picking allocates nothing.
type pickScratch struct {
	cands []string
	lows  []lower
}

// lower is a task read of a class below the host's.
type lower struct {
	t     *task
	u     *unit
	class int
}

// waitingClasses is the lowest and the highest size class of the tasks
// waiting, from their count by size; any is false when none waits.
func (m *Machine) waitingClasses() (lo, hi int, any bool) {
	w := &m.ix.waiting
	first := slices.IndexFunc(w[:], func(n int) bool { return n > 0 })
	if first < 0 {
		return 0, 0, false
	}
	last := len(w) - 1
	for w[last] == 0 {
		last--
	}
	return m.ix.sizes.class(first), m.ix.sizes.class(last), true
}

// setByBlob keeps the waiting tasks on blob b.
func (m *Machine) setByBlob(b wu.Hash, ids []string) {
	if len(ids) == 0 {
		delete(m.ix.byBlob, b)
		return
	}
	m.ix.byBlob[b] = ids
}

// queued notes that t waits for a host, for the first time or again: the
// index of its input learns of it, and idle hosts will hear of it.
func (m *Machine) queued(t *task) {
	if u := m.st.Units[t.Unit]; u.Stdin != "" {
		m.index(u.Stdin, t.ID)
	}
	m.waitWork(t, 1)
	m.available++
}

// index puts task id in the list of the tasks on blob b, in task order:
// a member that rebuilt the index from a snapshot has the same list as one
// that built it entry by entry.
func (m *Machine) index(b wu.Hash, id string) {
	ids := m.ix.byBlob[b]
	i, found := slices.BinarySearchFunc(ids, id, compareTasks)
	if !found {
		m.ix.byBlob[b] = slices.Insert(ids, i, id)
	}
}

// compareTasks orders task ids "wu<unit>_<replica>" by unit number, then
// replica: the order they were made in.
func compareTasks(a, b string) int {
	ua, ra := taskNumbers(a)
	ub, rb := taskNumbers(b)
	if ua != ub {
		return cmpInt(ua, ub)
	}
	if ra != rb {
		return cmpInt(ra, rb)
	}
	return strings.Compare(a, b)
}

func cmpInt(a, b uint64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

func taskNumbers(id string) (unit, replica uint64) {
	u, r, _ := strings.Cut(strings.TrimPrefix(id, "wu"), "_")
	unit, _ = strconv.ParseUint(u, 10, 64)
	replica, _ = strconv.ParseUint(r, 10, 64)
	return unit, replica
}
