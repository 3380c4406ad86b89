package daemon

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/momonga-project/momonga/client/host"
	"github.com/momonga-project/momonga/internal/atomicfile"
	wu "github.com/momonga-project/momonga/workunits"
)

// The state file holds what the daemon must remember across runs besides
// the identity, the preferences and the reports: attached projects with
// their shares and history, queued tasks, the benchmarks. It is written
// atomically with a checksum; the previous good copy is kept beside it, so
// a file damaged anyway (a disk error, an editor) is detected at start and
// the daemon goes on from the previous copy, or from nothing. Finished
// results never depend on it: they are in reports/.
const (
	stateFile     = "state.json"
	statePrevFile = "state.prev.json"
	stateVersion  = 1
)

// HasState reports whether dataDir holds a client's state (or its previous
// copy): a client that ran there before and may have projects attached.
func HasState(dataDir string) bool {
	for _, name := range []string{stateFile, statePrevFile} {
		if _, err := os.Stat(filepath.Join(dataDir, name)); err == nil {
			return true
		}
	}
	return false
}

type stateEnvelope struct {
	Sum   string          `json:"sum"` // sha-256 of State, hex
	State json.RawMessage `json:"state"`
}

type savedState struct {
	V             int             `json:"v"`
	Projects      []savedProject  `json:"projects"`
	Tasks         []savedTask     `json:"tasks"`
	Bench         host.Benchmarks `json:"bench"`
	UserSuspended bool            `json:"user_suspended,omitempty"`
}

type savedProject struct {
	URL      string             `json:"url"`
	Name     string             `json:"name,omitempty"`
	Share    float64            `json:"share"`
	Used     float64            `json:"used"`
	UsedAt   time.Time          `json:"used_at,omitzero"`
	Deadline float64            `json:"deadline_seconds,omitempty"`
	MeanSecs map[string]float64 `json:"mean_seconds,omitempty"`
}

type savedTask struct {
	Project    string        `json:"project"`
	Assignment wu.Assignment `json:"assignment"`
	Received   time.Time     `json:"received"`
}

func (d *Daemon) saveStateLocked() {
	st := savedState{V: stateVersion, Bench: d.bench, UserSuspended: d.userSuspended}
	for _, p := range d.projects {
		st.Projects = append(st.Projects, savedProject{URL: p.url, Name: p.name, Share: p.plan.Share, Used: p.plan.Used,
			UsedAt: p.plan.At, Deadline: p.plan.Deadline.Seconds(), MeanSecs: p.meanSecs})
	}
	for _, t := range d.tasks {
		if !t.aborted {
			st.Tasks = append(st.Tasks, savedTask{Project: t.proj.url, Assignment: t.a, Received: t.received})
		}
	}
	body := wu.Encode(st)
	sum := sha256.Sum256(body)
	env := wu.Encode(stateEnvelope{Sum: hex.EncodeToString(sum[:]), State: body})
	path := filepath.Join(d.cfg.DataDir, stateFile)
	if _, err := readState(path); err == nil {
		_ = os.Rename(path, filepath.Join(d.cfg.DataDir, statePrevFile))
	}
	if err := atomicfile.Write(path, env, 0o600); err != nil {
		d.log.Warn("save state", "err", err)
		return
	}
	d.dirty = false
	d.savedAt = d.now()
}

// readState reads and checks one state file.
func readState(path string) (savedState, error) {
	var st savedState
	b, err := os.ReadFile(path)
	if err != nil {
		return st, err
	}
	var env stateEnvelope
	if err := json.Unmarshal(b, &env); err != nil {
		return st, fmt.Errorf("not a state file: %w", err)
	}
	sum := sha256.Sum256(env.State)
	if hex.EncodeToString(sum[:]) != env.Sum {
		return st, errors.New("checksum mismatch")
	}
	if err := json.Unmarshal(env.State, &st); err != nil || st.V < 1 {
		return st, fmt.Errorf("malformed state: %v", err)
	}
	return st, nil
}

// loadState restores the state, recovering from a damaged file.
func (d *Daemon) loadState() {
	path := filepath.Join(d.cfg.DataDir, stateFile)
	st, err := readState(path)
	switch {
	case errors.Is(err, os.ErrNotExist):
		return
	case err != nil:
		aside := path + ".corrupt-" + d.now().Format("20060102-150405")
		_ = os.Rename(path, aside)
		prev, perr := readState(filepath.Join(d.cfg.DataDir, statePrevFile))
		from := "the previous copy"
		if perr != nil {
			prev, from = savedState{}, "nothing (finished results are kept in reports/)"
		}
		d.log.Warn("the state file is damaged: set aside, going on from "+from, "file", aside, "err", err)
		d.event(Event{Kind: "recovered", Reason: fmt.Sprintf("state file damaged (%v): going on from %s", err, from)})
		st = prev
		d.dirty = true
	}
	d.bench = st.Bench
	d.userSuspended = st.UserSuspended
	for _, sp := range st.Projects {
		if checkProjectURL(sp.URL) != nil || sp.Share <= 0 {
			continue
		}
		p := newProject(sp.URL, sp.Share)
		p.name, p.plan.Used, p.plan.At = sp.Name, sp.Used, sp.UsedAt
		p.plan.Deadline = time.Duration(sp.Deadline * float64(time.Second))
		for app, s := range sp.MeanSecs {
			p.meanSecs[app] = s
		}
		d.projects[sp.URL] = p
	}
	for _, st := range st.Tasks {
		p := d.projects[st.Project]
		if p == nil {
			continue
		}
		key := taskKey(p.url, st.Assignment.Task)
		d.tasks[key] = &task{key: key, proj: p, a: st.Assignment, received: st.Received}
	}
}

// adoptOldReports gives every waiting report a project: files written
// before several projects could be attached go to the project given on the
// command line, or to the only one attached; a report for a project that
// is no longer attached (the state file was lost) re-attaches it, so that
// no finished result is lost.
func (d *Daemon) adoptOldReports() {
	paths, _ := filepath.Glob(filepath.Join(d.cfg.DataDir, "reports", "*.json"))
	for _, path := range paths {
		r, err := readReport(path)
		if err != nil {
			continue // dropped with a warning when its project sends
		}
		if r.Project == "" {
			switch {
			case d.cfg.Project != "":
				r.Project = d.cfg.Project
			case len(d.projects) == 1:
				for u := range d.projects {
					r.Project = u
				}
			default:
				d.log.Warn("a saved report names no project and several are attached; it stays until one is given with --project", "file", path)
				continue
			}
		}
		if d.projects[r.Project] == nil && checkProjectURL(r.Project) == nil {
			d.log.Warn("re-attaching a project to send its finished results", "project", r.Project)
			d.projects[r.Project] = newProject(r.Project, DefaultShare)
			d.dirty = true
		}
		if p := d.projects[r.Project]; p != nil {
			p.unreported[r.Task] = true
		}
		if want := d.reportPath(r); want != path {
			if err := d.saveReport(r); err == nil {
				os.Remove(path)
			}
		}
	}
}
