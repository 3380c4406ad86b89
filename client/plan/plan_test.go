package plan

import (
	"fmt"
	"math"
	"testing"
	"time"
)

func TestAtRiskAndChooseEarliestDeadlineFirst(t *testing.T) {
	now := time.Unix(0, 0)
	tasks := []Task{
		{ID: "a", Project: "p", Remain: time.Hour, Deadline: now.Add(10 * time.Hour)},
		{ID: "b", Project: "q", Remain: time.Hour, Deadline: now.Add(90 * time.Minute)},
		{ID: "c", Project: "q", Remain: time.Hour, Deadline: now.Add(100 * time.Minute)},
	}
	// One slot: b then c would finish at 2 h, after c's deadline.
	risk := AtRisk(tasks, 1, now)
	if !risk["c"] || risk["a"] || risk["b"] {
		t.Errorf("at risk: %v", risk)
	}
	projects := []Project{{URL: "p", Share: 100}, {URL: "q", Share: 100, Used: 1e6}}
	if got := Choose(tasks, projects, 1, 1<<40, now); len(got) != 1 || got[0] != "c" {
		t.Errorf("chose %v, want the task at risk", got)
	}
	// With two slots nothing is at risk: the owed project p goes first.
	if got := Choose(tasks, projects, 2, 1<<40, now); fmt.Sprint(got) != "[a b]" {
		t.Errorf("chose %v", got)
	}
}

func TestChooseWithinMemory(t *testing.T) {
	now := time.Unix(0, 0)
	tasks := []Task{
		{ID: "big", Project: "p", Remain: time.Hour, Deadline: now.Add(time.Hour * 10), Memory: 600},
		{ID: "small", Project: "p", Remain: time.Hour, Deadline: now.Add(time.Hour * 11), Memory: 300},
		{ID: "small2", Project: "p", Remain: time.Hour, Deadline: now.Add(time.Hour * 12), Memory: 300},
	}
	got := Choose(tasks, []Project{{URL: "p", Share: 1}}, 3, 700, now)
	if fmt.Sprint(got) != "[big]" {
		t.Errorf("chose %v within 700 bytes", got)
	}
	got = Choose(tasks, []Project{{URL: "p", Share: 1}}, 3, 500, now)
	if fmt.Sprint(got) != "[small]" {
		t.Errorf("chose %v within 500 bytes", got)
	}
}

func TestFetchKeepsBufferWithinDeadlines(t *testing.T) {
	now := time.Unix(0, 0)
	buf := Buffer{Min: 2 * time.Hour, Extra: 12 * time.Hour}
	projects := []Project{{URL: "p", Share: 1, CanFetch: true}}
	p, secs, ok := Fetch(nil, projects, 2, buf, now)
	if !ok || p != "p" || secs != (28*time.Hour).Seconds() {
		t.Errorf("empty buffer: %s %v %v", p, secs, ok)
	}
	// Enough queued: no fetch.
	full := []Task{{ID: "x", Project: "p", Remain: 3 * time.Hour}, {ID: "y", Project: "p", Remain: 3 * time.Hour}}
	if _, _, ok := Fetch(full, projects, 2, buf, now); ok {
		t.Error("fetched with a full buffer")
	}
	// A project whose deadlines are 10 h: at most 2 slots × 8 h of work.
	projects[0].Deadline = 10 * time.Hour
	_, secs, ok = Fetch(nil, projects, 2, buf, now)
	if !ok || secs != (16*time.Hour).Seconds() {
		t.Errorf("deadline-bound fetch: %v %v", secs, ok)
	}
	// Already 16 h queued: nothing more can finish in time.
	queue := []Task{{ID: "x", Project: "p", Remain: 8 * time.Hour}, {ID: "y", Project: "p", Remain: 8 * time.Hour}}
	if _, _, ok := Fetch(append(queue[:1:1], Task{ID: "z", Project: "p", Remain: 0}), projects, 2, Buffer{Min: 10 * time.Hour}, now); !ok {
		t.Error("no fetch with room left")
	}
	if _, _, ok := Fetch(queue, projects, 2, Buffer{Min: 10 * time.Hour, Extra: 10 * time.Hour}, now); ok {
		t.Error("fetched beyond the deadlines")
	}
	projects[0].CanFetch = false
	if _, _, ok := Fetch(nil, projects, 2, buf, now); ok {
		t.Error("fetched from a project backing off")
	}
}

// TestSharesOverADay simulates two projects with endless work and shares
// 1:3 on two slots for two days, with the daemon's cycle: fetch when the
// buffer runs low, run the chosen tasks for a minute, charge their projects.
func TestSharesOverADay(t *testing.T) {
	now := time.Unix(0, 0)
	projects := []Project{{URL: "a", Share: 100, CanFetch: true}, {URL: "b", Share: 300, CanFetch: true}}
	taskLen := map[string]time.Duration{"a": 17 * time.Minute, "b": 41 * time.Minute}
	var tasks []Task
	n := 0
	used := map[string]float64{}
	step := time.Minute
	buf := Buffer{Min: 30 * time.Minute, Extra: time.Hour}
	for now.Before(time.Unix(0, 0).Add(48 * time.Hour)) {
		if p, secs, ok := Fetch(tasks, projects, 2, buf, now); ok {
			for got := 0.0; got < secs; got += taskLen[p].Seconds() {
				n++
				tasks = append(tasks, Task{ID: fmt.Sprint(n), Project: p, Remain: taskLen[p], Deadline: now.Add(7 * 24 * time.Hour)})
			}
		}
		chosen := Choose(tasks, projects, 2, 1<<40, now)
		run := map[string]bool{}
		for _, id := range chosen {
			run[id] = true
		}
		now = now.Add(step)
		var left []Task
		for _, t := range tasks {
			t.Running = run[t.ID]
			if t.Running {
				t.Remain -= step
				for i := range projects {
					if projects[i].URL == t.Project {
						projects[i].Charge(now, step.Seconds())
					}
				}
				if now.After(time.Unix(0, 0).Add(24 * time.Hour)) {
					used[t.Project] += step.Seconds()
				}
			}
			if t.Remain > 0 {
				left = append(left, t)
			}
		}
		tasks = left
	}
	share := used["b"] / (used["a"] + used["b"])
	if math.Abs(share-0.75) > 0.05 {
		t.Errorf("project b got %.3f of the second day, want 0.75 ± 0.05 (a %.0f s, b %.0f s)", share, used["a"], used["b"])
	}
	t.Logf("second day: a %.0f s, b %.0f s, b's part %.3f", used["a"], used["b"], share)
}
