// Package plan is the client's local scheduler (DESIGN §7), pure like the
// project's: which tasks hold the slots now, and which project to ask for
// how much work. Its inputs are the tasks and projects as the daemon knows
// them and the time; it does no I/O.
//
// Projects share the machine by resource share over about a day: each
// project's CPU time decays with a one-day half-life, and the project
// furthest below its share runs first and is asked for work first. A task
// whose deadline is at risk runs before anything else, earliest deadline
// first, and work is never fetched beyond what the slots can finish before
// the deadlines the project gives.
package plan

import (
	"math"
	"sort"
	"time"
)

// HalfLife is how fast past CPU use is forgotten when shares are compared.
const HalfLife = 24 * time.Hour

// Task is a task the client holds.
type Task struct {
	ID       string
	Project  string
	Remain   time.Duration // estimated running time left
	Deadline time.Time
	Running  bool  // holds a slot now (running or started)
	Memory   int64 // bytes it may use
}

// Project is an attached project.
type Project struct {
	URL   string
	Share float64
	Used  float64   // decayed CPU seconds
	At    time.Time // when Used was last decayed
	// Deadline is the shortest time from assignment to deadline the project
	// has given; 0 when it has given no task yet.
	Deadline time.Duration
	// CanFetch is false while the project is backing off or unreachable.
	CanFetch bool
}

// Decay brings Used forward to now.
func (p *Project) Decay(now time.Time) {
	if p.At.IsZero() {
		p.At = now
		return
	}
	if dt := now.Sub(p.At); dt > 0 {
		p.Used *= math.Exp2(-dt.Seconds() / HalfLife.Seconds())
		p.At = now
	}
}

// Charge adds CPU seconds used by the project's tasks.
func (p *Project) Charge(now time.Time, seconds float64) {
	p.Decay(now)
	p.Used += seconds
}

// Priorities is each project's share of the machine less its share of the
// recent use: the higher, the more it is owed.
func Priorities(projects []Project) map[string]float64 {
	var shares, used float64
	for _, p := range projects {
		shares += p.Share
		used += p.Used
	}
	out := make(map[string]float64, len(projects))
	for _, p := range projects {
		prio := 0.0
		if shares > 0 {
			prio = p.Share / shares
		}
		if used > 0 {
			prio -= p.Used / used
		}
		out[p.URL] = prio
	}
	return out
}

// AtRisk returns the tasks that would miss their deadlines if the slots ran
// every task in order of deadline: those must go first.
func AtRisk(tasks []Task, slots int, now time.Time) map[string]bool {
	if slots < 1 {
		slots = 1
	}
	byDeadline := append([]Task(nil), tasks...)
	sort.SliceStable(byDeadline, func(i, j int) bool { return byDeadline[i].Deadline.Before(byDeadline[j].Deadline) })
	free := make([]time.Time, slots)
	for i := range free {
		free[i] = now
	}
	risk := map[string]bool{}
	for _, t := range byDeadline {
		k := 0
		for i := range free {
			if free[i].Before(free[k]) {
				k = i
			}
		}
		free[k] = free[k].Add(t.Remain)
		if !t.Deadline.IsZero() && free[k].After(t.Deadline) {
			risk[t.ID] = true
		}
	}
	return risk
}

// Choose picks the tasks to hold the slots, in order, within memory bytes:
// deadlines at risk first (earliest first), then the most owed project's,
// tasks already running before others of the same project (a switch loses
// work), then the earliest deadline.
func Choose(tasks []Task, projects []Project, slots int, memory int64, now time.Time) []string {
	prio := Priorities(projects)
	risk := AtRisk(tasks, slots, now)
	order := append([]Task(nil), tasks...)
	sort.SliceStable(order, func(i, j int) bool {
		a, b := order[i], order[j]
		if risk[a.ID] != risk[b.ID] {
			return risk[a.ID]
		}
		if !risk[a.ID] && a.Project != b.Project && prio[a.Project] != prio[b.Project] {
			return prio[a.Project] > prio[b.Project]
		}
		if a.Running != b.Running {
			return a.Running
		}
		return a.Deadline.Before(b.Deadline)
	})
	var chosen []string
	var used int64
	for _, t := range order {
		if len(chosen) == slots {
			break
		}
		if t.Memory > 0 && used+t.Memory > memory {
			continue
		}
		used += t.Memory
		chosen = append(chosen, t.ID)
	}
	return chosen
}

// Buffer is how much work to keep: fetch when less than Min per slot is
// queued, up to Min+Extra.
type Buffer struct {
	Min, Extra time.Duration
}

// Fetch says which project to ask for work and how many seconds of it, or
// ok = false when the buffer is full enough or no project can give any
// without missing a deadline.
func Fetch(tasks []Task, projects []Project, slots int, buf Buffer, now time.Time) (project string, seconds float64, ok bool) {
	if slots < 1 {
		slots = 1
	}
	var queued time.Duration
	perProject := map[string]time.Duration{}
	for _, t := range tasks {
		queued += t.Remain
		perProject[t.Project] += t.Remain
	}
	busyIdle := len(tasks) < slots // a slot with nothing to do always wants work
	if queued >= time.Duration(slots)*buf.Min && !busyIdle {
		return "", 0, false
	}
	want := time.Duration(slots)*(buf.Min+buf.Extra) - queued
	if busyIdle {
		want = max(want, time.Second)
	}
	prio := Priorities(projects)
	order := append([]Project(nil), projects...)
	sort.SliceStable(order, func(i, j int) bool { return prio[order[i].URL] > prio[order[j].URL] })
	for _, p := range order {
		if !p.CanFetch || p.Share <= 0 {
			continue
		}
		amount := want
		if p.Deadline > 0 {
			// New work starts behind what is queued: keep the whole queue,
			// spread over the slots, finishable within the project's
			// deadline with a margin.
			room := time.Duration(slots)*p.Deadline*8/10 - queued
			amount = min(amount, room)
		}
		if amount <= 0 {
			continue
		}
		return p.URL, amount.Seconds(), true
	}
	return "", 0, false
}
