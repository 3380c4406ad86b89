package daemon

import (
	"context"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"time"

	"github.com/momonga-project/momonga/client/host"
	"github.com/momonga-project/momonga/client/plan"
	"github.com/momonga-project/momonga/client/prefs"
)

// reconcile looks at the machine and the tasks and makes them agree with the
// preferences: it starts, resumes, suspends and stops tasks and asks
// projects for work. It returns when it wants to run again.
func (d *Daemon) reconcile(now time.Time) time.Duration {
	d.reconcileMu.Lock()
	defer d.reconcileMu.Unlock()
	d.mu.Lock()
	elapsed := time.Duration(0)
	if !d.lastTick.IsZero() {
		elapsed = min(max(now.Sub(d.lastTick), 0), time.Minute)
	}
	d.lastTick = now
	d.chargeLocked(now, elapsed)

	if len(d.tasks) > 0 || !now.Before(d.nextObserve) {
		d.obs = d.monitor.Observe(now, d.pidsLocked())
		d.nextObserve = now.Add(pollIdle)
	}
	dec := d.gov.Decide(d.prefs, d.obs)
	if d.userSuspended {
		dec.Run, dec.Reason = false, "suspended by the volunteer"
	}
	forPerson := !dec.Run && dec.UserActive
	throttled := false
	if dec.Run && d.prefs.CPUUsageLimit < 100 && d.anyStartedLocked() {
		if !now.Before(d.dutyUntil) {
			d.dutyOn = !d.dutyOn
			on := time.Duration(float64(dutyPeriod) * d.prefs.CPUUsageLimit / 100)
			if d.dutyOn {
				d.dutyUntil = now.Add(on)
			} else {
				d.dutyUntil = now.Add(dutyPeriod - on)
			}
		}
		throttled = !d.dutyOn
	} else {
		d.dutyOn, d.dutyUntil = true, time.Time{}
	}
	if dec != d.decision {
		d.changed()
	}
	d.decision = dec

	slots := d.slotsLocked()
	memBudget := d.memoryBudgetLocked(dec.UserActive)
	diskOK := d.disk.ok(now, d.cfg.DataDir, d.prefs)
	planTasks, planProjects := d.planInputLocked(now)
	var chosen map[string]bool
	if dec.Run {
		chosen = map[string]bool{}
		for _, key := range plan.Choose(planTasks, planProjects, slots, memBudget, now) {
			chosen[key] = true
		}
	}

	var suspend, resume []*task
	for _, t := range d.tasks {
		switch {
		case t.state == stateQueued && chosen[t.key] && !throttled && diskOK:
			d.startLocked(t)
		case t.state == stateRunning && chosen[t.key] && !throttled && t.stopped:
			t.stopped = false
			if t.proc != nil {
				resume = append(resume, t)
			}
		case t.state == stateRunning && (!chosen[t.key] || throttled) && !t.stopped:
			t.stopped = true
			t.reason = dec.Reason
			if throttled {
				t.reason = "cpu_usage_limit"
			} else if dec.Run {
				t.reason = "waiting for a slot"
			}
			if t.proc != nil {
				suspend = append(suspend, t)
			}
		}
	}
	d.enforceMemoryLocked(memBudget)
	if diskOK {
		d.fetchLocked(now, planTasks, planProjects, slots)
	}
	if d.dirty && now.Sub(d.savedAt) >= saveEvery {
		d.saveStateLocked()
	}
	benchDue := d.benchRun == nil && !now.Before(d.nextBenchLook)
	if benchDue {
		d.nextBenchLook = now.Add(benchCheckEvery)
		benchDue = d.bench.Stale(host.Measure(d.cfg.DataDir), now) && !d.anyRunningLocked()
	}
	trim := false
	if d.anyStartedLocked() {
		d.busyAt, d.trimmed = now, false
	} else if !d.trimmed && d.cfg.TrimMemory {
		if now.Sub(d.busyAt) >= trimAfter {
			trim, d.trimmed = true, true
		}
	}
	next := pollIdle
	if !d.trimmed && d.cfg.TrimMemory {
		next = min(next, max(d.busyAt.Add(trimAfter).Sub(now), time.Millisecond))
	}
	switch {
	case d.anyRunningLocked():
		next = pollRunning
	case len(d.tasks) > 0:
		next = pollHolding
	}
	// A project waiting out an empty reply is asked again when the wait ends.
	for _, p := range d.projects {
		if p.connected && p.nextFetch.After(now) {
			next = min(next, p.nextFetch.Sub(now))
		}
	}
	if !d.dutyUntil.IsZero() {
		next = min(next, max(d.dutyUntil.Sub(now), time.Millisecond))
	}
	d.mu.Unlock()

	if trim {
		trimResident()
	}
	if len(suspend) > 0 {
		d.suspend(suspend, forPerson)
	}
	for _, t := range resume {
		if err := t.proc.Resume(); err == nil {
			d.event(Event{Kind: "continued", Task: t.a.Task, Project: t.proj.url})
		}
	}
	if benchDue {
		d.wg.Add(1)
		go func() {
			defer d.wg.Done()
			if _, err := d.runBenchmarks(d.runCtx); err == nil {
				d.rehello()
			}
		}()
	}
	return next
}

// suspend stops tasks. When the person came back, each task is first asked
// for a checkpoint, all at once and within checkpointBudget, so that they
// still stop within a second.
func (d *Daemon) suspend(tasks []*task, forPerson bool) {
	if forPerson && d.cfg.Checkpointer != nil {
		ctx, cancel := context.WithTimeout(d.runCtx, checkpointBudget)
		var wg sync.WaitGroup
		for _, t := range tasks {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if err := d.cfg.Checkpointer.Checkpoint(ctx, t.a.Task, t.proc); err != nil {
					d.log.Debug("checkpoint before suspending", "task", t.a.Task, "err", err)
				}
			}()
		}
		wg.Wait()
		cancel()
	}
	for _, t := range tasks {
		d.mu.Lock()
		proc, stop := t.proc, t.stopped
		d.mu.Unlock()
		if proc == nil || !stop {
			continue
		}
		if err := proc.Suspend(); err != nil {
			d.log.Debug("suspend", "task", t.a.Task, "err", err)
			continue
		}
		d.event(Event{Kind: "suspended", Task: t.a.Task, Project: t.proj.url, Reason: t.reason})
	}
}

func (d *Daemon) anyRunningLocked() bool {
	for _, t := range d.tasks {
		if t.state == stateRunning && !t.stopped {
			return true
		}
	}
	return false
}

// anyStartedLocked reports whether a task has a worker, running or not.
func (d *Daemon) anyStartedLocked() bool {
	for _, t := range d.tasks {
		if t.state == stateRunning {
			return true
		}
	}
	return false
}

// pidsLocked are this process and its workers: their CPU is not "other".
func (d *Daemon) pidsLocked() []int {
	pids := []int{os.Getpid()}
	for _, t := range d.tasks {
		if t.proc != nil {
			pids = append(pids, t.proc.Pid())
		}
	}
	return pids
}

// chargeLocked counts the running time since the last look against each
// running task and its project.
func (d *Daemon) chargeLocked(now time.Time, elapsed time.Duration) {
	for _, t := range d.tasks {
		if t.state == stateRunning && !t.stopped && t.proc != nil {
			t.ran += elapsed
			t.proj.plan.Charge(now, elapsed.Seconds())
		}
	}
	for _, p := range d.projects {
		p.plan.Decay(now)
	}
}

// memoryBudgetLocked is what the tasks may hold: ram_busy_percent or
// ram_idle_percent of the machine's memory.
func (d *Daemon) memoryBudgetLocked(userActive bool) int64 {
	if d.info.MemoryBytes <= 0 {
		return 1 << 62
	}
	pct := d.prefs.RAMIdlePercent
	if userActive {
		pct = d.prefs.RAMBusyPercent
	}
	return int64(float64(d.info.MemoryBytes) * pct / 100)
}

// enforceMemoryLocked stops the most recently started tasks while the
// workers' resident memory is over budget; they go back to the queue and
// start again when there is room.
func (d *Daemon) enforceMemoryLocked(budget int64) {
	var running []*task
	var total int64
	for _, t := range d.tasks {
		if t.state != stateRunning || t.proc == nil {
			continue
		}
		if rss, ok := host.ResidentBytes(t.proc.Pid()); ok {
			t.rss = rss
			total += rss
			running = append(running, t)
		}
	}
	if total <= budget {
		return
	}
	sort.Slice(running, func(i, j int) bool { return running[i].started.After(running[j].started) })
	for _, t := range running {
		if total <= budget {
			return
		}
		d.log.Info("stopping a task over the memory limit", "task", t.a.Task, "rss", t.rss, "budget", budget)
		t.requeue = "memory limit"
		_ = t.proc.KillWithReason("stopped by the client: over the memory limit set in the preferences")
		total -= t.rss
	}
}

// diskCheck says whether momonga's use of the data directory's disk is
// within the preferences, looking again at most every diskCheckEvery.
type diskCheck struct {
	at     time.Time
	result bool
}

const diskCheckEvery = time.Minute

func (c *diskCheck) ok(now time.Time, dir string, p prefs.Prefs) bool {
	if !c.at.IsZero() && now.Sub(c.at) < diskCheckEvery {
		return c.result
	}
	c.at = now
	c.result = diskWithinLimits(dirSize(dir), host.Measure(dir), p)
	return c.result
}

// diskWithinLimits: momonga's use must stay under disk_max_used_percent of
// the disk, and disk_min_free_gb must stay free.
func diskWithinLimits(used int64, in host.Info, p prefs.Prefs) bool {
	if in.DiskTotalBytes <= 0 {
		return true
	}
	if float64(used) > float64(in.DiskTotalBytes)*p.DiskMaxUsedPercent/100 {
		return false
	}
	return float64(in.DiskFreeBytes) >= p.DiskMinFreeGB*1e9
}

func dirSize(dir string) int64 {
	var n int64
	_ = filepath.WalkDir(dir, func(_ string, e fs.DirEntry, err error) error {
		if err == nil && !e.IsDir() {
			if info, err := e.Info(); err == nil {
				n += info.Size()
			}
		}
		return nil
	})
	return n
}
