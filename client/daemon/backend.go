package daemon

import (
	"context"
	"sort"
	"time"

	"github.com/momonga-project/momonga/client/control"
	"github.com/momonga-project/momonga/client/host"
	"github.com/momonga-project/momonga/client/prefs"
)

// The daemon is the control API's backend.
var _ control.Backend = (*Daemon)(nil)

// Status is the client at a glance.
func (d *Daemon) Status() control.Status {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.statusLocked()
}

func (d *Daemon) statusLocked() control.Status {
	s := control.Status{
		Host: d.id.ID, Computing: d.decision.Run, Reason: d.decision.Reason, UserActive: d.decision.UserActive,
		UserSuspended: d.userSuspended, Slots: d.slotsLocked(), Projects: len(d.projects), Observation: d.obs,
		Benchmarking: d.benchRun != nil,
	}
	for _, t := range d.tasks {
		switch {
		case t.state == stateQueued:
			s.Queued++
		case t.stopped:
			s.Suspended++
		default:
			s.Running++
		}
	}
	return s
}

// Tasks lists the tasks held, by project and deadline.
func (d *Daemon) Tasks() []control.Task {
	d.mu.Lock()
	defer d.mu.Unlock()
	out := make([]control.Task, 0, len(d.tasks))
	for _, t := range d.tasks {
		state := "queued"
		if t.state == stateRunning {
			state = "running"
			if t.stopped {
				state = "suspended"
			}
		}
		pid := 0
		if t.proc != nil {
			pid = t.proc.Pid()
		}
		est, frac := d.estimateLocked(t), 0.0
		if t.state == stateRunning {
			frac = d.fraction(t)
		}
		remain := max(est-t.ran, 0).Seconds()
		if frac > 0 {
			remain = t.ran.Seconds() * (1 - frac) / frac
		}
		out = append(out, control.Task{
			PID: pid,
			ID:  t.a.Task, Project: t.proj.url, App: t.a.App, State: state, Reason: t.reason,
			CPUSeconds: t.ran.Seconds(), EstimatedSeconds: est.Seconds(), Deadline: t.a.Deadline,
			Progress: frac, RemainingSeconds: remain, Picture: d.hasPicture(t),
		})
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Project != out[j].Project {
			return out[i].Project < out[j].Project
		}
		return out[i].Deadline.Before(out[j].Deadline)
	})
	return out
}

// Projects lists the attached projects.
func (d *Daemon) Projects() []control.Project {
	d.mu.Lock()
	defer d.mu.Unlock()
	var used float64
	for _, p := range d.projects {
		used += p.plan.Used
	}
	out := make([]control.Project, 0, len(d.projects))
	for _, p := range d.projects {
		cp := control.Project{URL: p.url, Name: p.name, Share: p.plan.Share, Connected: p.connected,
			Tasks: len(p.tasksLocked(d)), LastError: p.lastErr, NextFetch: p.nextFetch}
		if used > 0 {
			cp.ShareOfUse = p.plan.Used / used
		}
		cp.Credit = p.credit
		d.wantCreditLocked(p)
		out = append(out, cp)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].URL < out[j].URL })
	return out
}

// Host is what the daemon knows of its machine.
func (d *Daemon) Host() control.HostReport {
	in := host.Measure(d.cfg.DataDir)
	d.mu.Lock()
	defer d.mu.Unlock()
	d.info = in
	return control.HostReport{Info: in, Benchmarks: d.bench}
}

// Benchmark runs the benchmarks now and tells the projects.
func (d *Daemon) Benchmark(ctx context.Context) (host.Benchmarks, error) {
	b, err := d.runBenchmarks(ctx)
	if err == nil {
		d.rehello()
	}
	return b, err
}

// Suspend stops every task until Resume, whatever the preferences say.
func (d *Daemon) Suspend() control.Status {
	d.setUserSuspended(true)
	return d.Status()
}

// Resume lets tasks run again as the preferences allow.
func (d *Daemon) Resume() control.Status {
	d.setUserSuspended(false)
	return d.Status()
}

func (d *Daemon) setUserSuspended(on bool) {
	d.mu.Lock()
	d.userSuspended = on
	d.dirty = true
	running := d.runCtx != nil
	d.mu.Unlock()
	if running {
		// Decide now rather than at the next poll, so the answer shows it.
		d.reconcile(d.now())
	}
}

// Attach attaches a project with a resource share (0 = the default), or
// changes the share of one attached.
func (d *Daemon) Attach(_ context.Context, url string, share float64) error {
	d.mu.Lock()
	defer d.kick()
	defer d.mu.Unlock()
	return d.attachLocked(url, share)
}

// AttachWithKey registers the host with a project for the account whose
// key is given, keeps the credentials in the data directory, and attaches
// the project.
func (d *Daemon) AttachWithKey(ctx context.Context, req control.AttachRequest) (control.Attached, error) {
	if err := checkProjectURL(req.URL); err != nil {
		return control.Attached{}, err
	}
	name := req.Name
	if name == "" {
		name = d.id.Name
	}
	a, err := Attach(ctx, AttachConfig{DataDir: d.cfg.DataDir, URL: req.URL, AccountKey: req.AccountKey, Name: name, CA: []byte(req.CA)})
	if err != nil {
		return control.Attached{}, err
	}
	out := control.Attached{URL: a.URL, Project: a.Project, Host: a.Host, User: a.User, SigningKey: a.SigningKey}
	d.mu.Lock()
	defer d.kick()
	defer d.mu.Unlock()
	out.Reconnect = d.projects[req.URL] != nil && d.runCtx != nil
	return out, d.attachLocked(req.URL, req.Share)
}

// Detach leaves a project.
func (d *Daemon) Detach(url string) error {
	d.mu.Lock()
	defer d.kick()
	defer d.mu.Unlock()
	return d.detachLocked(url)
}

// Prefs are the preferences in force.
func (d *Daemon) Prefs() prefs.Prefs {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.prefs
}

// SetPref changes one preference, saves it and applies it at once.
func (d *Daemon) SetPref(key, value string) (prefs.Prefs, error) {
	d.mu.Lock()
	p := d.prefs
	if err := p.Set(key, value); err != nil {
		d.mu.Unlock()
		return d.prefs, err
	}
	if err := prefs.Save(d.cfg.DataDir, p); err != nil {
		d.mu.Unlock()
		return d.prefs, err
	}
	d.prefs = p
	d.mu.Unlock()
	d.kick()
	return p, nil
}

// CheckpointInterval is how often tasks may checkpoint, from the
// preferences (checkpoint_seconds), for whoever takes the checkpoints.
func (d *Daemon) CheckpointInterval() time.Duration {
	d.mu.Lock()
	defer d.mu.Unlock()
	return time.Duration(d.prefs.CheckpointSeconds * float64(time.Second))
}
