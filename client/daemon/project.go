package daemon

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"math"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/momonga-project/momonga/client/control"
	"github.com/momonga-project/momonga/client/plan"
	wu "github.com/momonga-project/momonga/workunits"
)

const (
	// maxTasksPerProject bounds what one project may have queued here (a
	// heartbeat lists them all).
	maxTasksPerProject = 1000
	// maxFetchTasks bounds one work request.
	maxFetchTasks = 64
	// maxFetchBackoff bounds the wait after empty work replies.
	maxFetchBackoff = 5 * time.Minute
)

// project is an attached project: its share and history (guarded by the
// daemon's lock) and its connection (owned by its goroutine).
type project struct {
	url      string
	att      Attachment // credentials and pinned key, read as its loop starts
	plan     plan.Project
	meanSecs map[string]float64 // learned running time per app
	name     string

	connected    bool
	lastErr      string
	fetching     bool
	nextFetch    time.Time
	emptyFetches int
	beat         time.Duration
	cancel       context.CancelFunc

	connMu sync.Mutex
	c      *conn

	fetchReq   chan int
	reportKick chan struct{}
	helloKick  chan struct{}

	// unreported names the tasks finished here whose reports the project
	// has not taken yet: with those held, what a work request says the
	// host holds (heldLocked).
	unreported map[string]bool

	credit      *control.Credit // what the project last said (credit.go)
	creditAsked time.Time
	creditKick  chan struct{}
}

// pushed takes a push from the project (work waits, on the host's push
// inbox) or a reconnection: the host asks for work now rather than at the
// end of its back-off, which stays as the fallback.
func (d *Daemon) pushed(p *project) {
	d.mu.Lock()
	p.emptyFetches = 0
	p.nextFetch = time.Time{}
	d.mu.Unlock()
	d.kick()
}

func newProject(u string, share float64) *project {
	return &project{
		url:        u,
		plan:       plan.Project{URL: u, Share: share},
		meanSecs:   map[string]float64{},
		unreported: map[string]bool{},
		fetchReq:   make(chan int, 1),
		reportKick: make(chan struct{}, 1),
		helloKick:  make(chan struct{}, 1),
		creditKick: make(chan struct{}, 1),
	}
}

func projectKey(u string) string {
	h := sha256.Sum256([]byte(u))
	return hex.EncodeToString(h[:8])
}

func (p *project) connection() *conn {
	p.connMu.Lock()
	defer p.connMu.Unlock()
	return p.c
}

func (p *project) kickReports() {
	select {
	case p.reportKick <- struct{}{}:
	default:
	}
}

// learn keeps a running mean of an app's running time.
func (p *project) learn(app string, secs float64) {
	if old, ok := p.meanSecs[app]; ok {
		secs = 0.7*old + 0.3*secs
	}
	p.meanSecs[app] = secs
}

func (p *project) tasksLocked(d *Daemon) []*task {
	var out []*task
	for _, t := range d.tasks {
		if t.proj == p {
			out = append(out, t)
		}
	}
	return out
}

// heldLocked names, in order, the project's tasks this host holds or has
// finished and not reported: the project sends again those it gave and
// are not named (wu.WorkRequest.Held).
func (p *project) heldLocked(d *Daemon) []string {
	var out []string
	for _, t := range p.tasksLocked(d) {
		out = append(out, t.a.Task)
	}
	for id := range p.unreported {
		out = append(out, id)
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// checkProjectURL refuses what cannot be a project's NATS address: one NATS
// URL, or the comma-separated URLs of the servers of a project's cluster
// (the client connects to any of them).
func checkProjectURL(s string) error {
	for one := range strings.SplitSeq(s, ",") {
		u, err := url.Parse(one)
		if err != nil || u.Host == "" {
			return fmt.Errorf("%q is not a project address: give its NATS URL, e.g. nats://project.example.org:4222, or its servers' URLs separated by commas", s)
		}
		switch u.Scheme {
		case "nats", "tls", "ws", "wss":
		default:
			return fmt.Errorf("%q: a project address starts with nats://, tls://, ws:// or wss://", s)
		}
	}
	return nil
}

func (d *Daemon) startProjectLocked(p *project) {
	// The connection outlives runCtx by StopGrace, for the checkpoints of
	// the tasks that stop.
	ctx, cancel := context.WithCancel(d.workCtx)
	p.cancel = cancel
	d.wg.Add(1)
	go func() {
		defer d.wg.Done()
		d.projectLoop(ctx, p)
	}()
}

// projectLoop owns a project's connection: it registers, then fetches work,
// sends heartbeats and reports as the decision loop and the tasks ask.
func (d *Daemon) projectLoop(ctx context.Context, p *project) {
	att, err := d.attachment(p.url)
	if err != nil {
		d.setProjectError(p, err)
		return
	}
	opts, err := d.connectOptions(att)
	if err != nil {
		d.setProjectError(p, err)
		return
	}
	d.mu.Lock()
	p.att = att
	d.mu.Unlock()
	// A host that was away says hello again, maybe through another server
	// (the hello names it, and its reply gives the reconnect spread for
	// the project's hosts as they are now), and may have missed a push: it
	// asks for work now.
	c, err := dial(p.url, att.Host, d.id.Name, d.log.With("project", p.url), func() { p.kickHello(); d.pushed(p) }, opts...)
	if err != nil {
		d.setProjectError(p, err)
		return
	}
	defer c.close()
	if _, err := c.nc.Subscribe(wu.PushSubject(att.Host), func(*nats.Msg) { d.pushed(p) }); err != nil {
		d.log.Warn("no push from the project; polling for work", "project", p.url, "err", err)
	}
	p.connMu.Lock()
	p.c = c
	p.connMu.Unlock()
	if !d.register(ctx, p, c) {
		return
	}
	d.sendReports(ctx, p, c)
	d.mu.Lock()
	every := p.beat
	d.mu.Unlock()
	beat := time.NewTicker(every)
	defer beat.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case n := <-p.fetchReq:
			d.fetchWork(ctx, p, c, n)
		case <-p.reportKick:
			d.sendReports(ctx, p, c)
		case <-p.helloKick:
			d.register(ctx, p, c)
		case <-p.creditKick:
			d.askCredit(ctx, p, c)
		case <-beat.C:
			d.beatProject(ctx, p, c)
		}
	}
}

// register says hello until the project answers or ctx ends.
func (d *Daemon) register(ctx context.Context, p *project, c *conn) bool {
	backoff := time.Second
	for {
		hello, err := c.hello(ctx, d.hostInfo())
		if ctx.Err() != nil {
			return false
		}
		if err == nil {
			d.mu.Lock()
			att, perr := d.pin(p.att, hello.Project, hello.SigningKey)
			p.att = att
			d.mu.Unlock()
			if perr != nil {
				// Refused for good: this project's apps are not run.
				d.setProjectError(p, perr)
				select {
				case d.fatal <- fmt.Errorf("project %s: %w", p.url, perr):
				default:
				}
				return false
			}
			d.mu.Lock()
			p.connected, p.lastErr, p.name = true, "", hello.Project
			p.beat = time.Duration(hello.BeatSeconds * float64(time.Second))
			if p.beat <= 0 {
				p.beat = 10 * time.Second
			}
			d.mu.Unlock()
			d.log.Info("registered", "project", p.url, "name", hello.Project)
			d.kick()
			return true
		}
		d.setProjectError(p, err)
		select {
		case <-ctx.Done():
			return false
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, time.Minute)
	}
}

func (d *Daemon) setProjectError(p *project, err error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	p.lastErr = err.Error()
	d.log.Warn("project", "url", p.url, "err", err)
}

// fetchLocked asks the project client/plan picks for work, when the buffer
// needs it.
func (d *Daemon) fetchLocked(now time.Time, tasks []plan.Task, projects []plan.Project, slots int) {
	day := 24 * time.Hour
	buf := plan.Buffer{
		Min:   time.Duration(d.prefs.WorkBufMinDays * float64(day)),
		Extra: time.Duration(d.prefs.WorkBufExtraDays * float64(day)),
	}
	u, secs, ok := plan.Fetch(tasks, projects, slots, buf, now)
	if !ok {
		return
	}
	p := d.projects[u]
	held := len(p.tasksLocked(d))
	n := max(slots-len(tasks), 1)
	if len(p.meanSecs) > 0 {
		var sum float64
		for _, s := range p.meanSecs {
			sum += s
		}
		n = int(math.Ceil(secs / max(sum/float64(len(p.meanSecs)), 1)))
	}
	n = max(min(n, maxFetchTasks, maxTasksPerProject-held), 1)
	select {
	case p.fetchReq <- n:
		p.fetching = true
	default:
	}
}

func (d *Daemon) fetchWork(ctx context.Context, p *project, c *conn, n int) {
	d.mu.Lock()
	cache := slices.Clone(d.inputs)
	held := p.heldLocked(d)
	d.mu.Unlock()
	all := len(held) <= wu.MaxHeldReport
	if !all {
		held = nil
	}
	var rep wu.WorkReply
	err := c.numbered(ctx, wu.OpWork, func(seq uint64) any {
		return wu.WorkRequest{V: wu.WireVersion, Seq: seq, Slots: n, Cache: cache, Held: held, HeldAll: all}
	}, &rep, 3)
	if ctx.Err() != nil {
		return
	}
	if wu.ErrorCode(err) == wu.CodeNotFound {
		// The project forgot this host (a new project data directory):
		// register again.
		d.register(ctx, p, c)
	}
	now := d.now()
	d.mu.Lock()
	defer d.kick()
	defer d.mu.Unlock()
	p.fetching = false
	if err != nil {
		p.lastErr = err.Error()
		p.nextFetch = now.Add(5 * time.Second)
		d.log.Warn("work request", "project", p.url, "err", err)
		return
	}
	p.lastErr = ""
	for _, a := range rep.Assignments {
		key := taskKey(p.url, a.Task)
		if d.tasks[key] != nil || p.unreported[a.Task] {
			continue // sent again, as the request crossed the reply that gave it
		}
		d.tasks[key] = &task{key: key, proj: p, a: a, received: now}
		if rel := a.Deadline.Sub(now); rel > 0 && (p.plan.Deadline == 0 || rel < p.plan.Deadline) {
			p.plan.Deadline = rel
		}
		d.dirty = true
		d.event(Event{Kind: "assigned", Task: a.Task, Project: p.url})
	}
	if len(rep.Assignments) < n {
		retry := time.Duration(rep.RetrySeconds * float64(time.Second))
		if retry <= 0 {
			retry = 5 * time.Second
		}
		if len(rep.Assignments) == 0 {
			p.emptyFetches++
			retry = min(retry<<min(p.emptyFetches-1, 10), max(maxFetchBackoff, retry))
		}
		p.nextFetch = now.Add(retry)
	} else {
		p.emptyFetches = 0
	}
}

func (d *Daemon) beatProject(ctx context.Context, p *project, c *conn) {
	d.mu.Lock()
	var tasks []wu.TaskProgress
	for _, t := range p.tasksLocked(d) {
		if !t.aborted {
			tasks = append(tasks, d.progressLocked(t))
		}
	}
	d.mu.Unlock()
	if len(tasks) == 0 {
		return
	}
	sort.Slice(tasks, func(i, j int) bool { return tasks[i].Task < tasks[j].Task })
	var rep wu.BeatReply
	err := c.numbered(ctx, wu.OpBeat, func(seq uint64) any {
		return wu.Beat{V: wu.WireVersion, Seq: seq, Tasks: tasks}
	}, &rep, 2)
	if err != nil {
		if ctx.Err() == nil {
			d.log.Warn("heartbeat", "project", p.url, "err", err)
		}
		return
	}
	for _, id := range rep.Abort {
		d.abort(p, id)
	}
}

// abort drops a task the project no longer wants from this host.
func (d *Daemon) abort(p *project, id string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	t := d.tasks[taskKey(p.url, id)]
	if t == nil {
		return
	}
	d.abortLocked(t)
}

func (d *Daemon) abortLocked(t *task) {
	t.aborted = true
	d.dirty = true
	if t.state == stateQueued {
		delete(d.tasks, t.key)
		d.event(Event{Kind: "aborted", Task: t.a.Task, Project: t.proj.url})
		return
	}
	if t.proc != nil {
		d.log.Info("aborting task", "task", t.a.Task, "project", t.proj.url)
		_ = t.proc.Kill()
	}
}

// sendReports sends the project's finished reports, oldest name first.
func (d *Daemon) sendReports(ctx context.Context, p *project, c *conn) {
	paths, _ := filepath.Glob(filepath.Join(d.cfg.DataDir, "reports", projectKey(p.url)+"-*.json"))
	sort.Strings(paths)
	sent := false
	defer func() {
		if sent {
			// Slots are free: the project may have more for them, whatever
			// it said while the host held all it could.
			d.pushed(p)
		}
	}()
	for _, path := range paths {
		r, err := readReport(path)
		if err != nil {
			d.log.Warn("unreadable saved report, dropped", "file", path, "err", err)
			os.Remove(path)
			d.forgetReport(p, path)
			continue
		}
		if !d.sendReport(ctx, c, r) {
			return
		}
		os.Remove(path)
		d.mu.Lock()
		delete(p.unreported, r.Task)
		d.mu.Unlock()
		sent = true
	}
}

// forgetReport takes the task whose report was at path, and was dropped,
// out of the tasks p keeps as finished here: the project may give it again,
// as it does a task whose report could not be saved. The file names its task
// by key alone, so each kept task's path is compared.
func (d *Daemon) forgetReport(p *project, path string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	for id := range p.unreported {
		if d.reportPath(savedReport{Project: p.url, Report: wu.Report{Task: id}}) == path {
			delete(p.unreported, id)
		}
	}
}

// sendReport uploads a successful task's output, then reports the task,
// retrying until the project answers or ctx ends. It returns false when the
// report should stay on disk for later.
func (d *Daemon) sendReport(ctx context.Context, c *conn, r savedReport) bool {
	if r.Outcome == wu.OutcomeSuccess {
		out, err := os.ReadFile(d.blobPath(r.Output))
		if err == nil && wu.HashOf(out) != r.Output {
			err = errors.New("output changed on disk")
		}
		if err == nil {
			_, err = c.upload(ctx, out)
		}
		if err != nil {
			if ctx.Err() == nil {
				d.log.Warn("upload result", "task", r.Task, "err", err)
			}
			return false
		}
	}
	rep := r.Report
	err := c.numbered(ctx, wu.OpResult, func(seq uint64) any { rep.Seq = seq; return rep }, &wu.Ack{}, -1)
	if ctx.Err() != nil {
		return false
	}
	if err != nil {
		// The project refused the report for good (the task is no longer
		// ours, for example); keeping it would only resend it forever.
		d.log.Warn("report refused", "task", r.Task, "err", err)
	}
	d.event(Event{Kind: "reported", Task: r.Task, Project: r.Project, Failed: err != nil || r.Outcome != wu.OutcomeSuccess, Reason: r.Reason})
	return true
}

// rehello sends the host's new description to every project.
func (d *Daemon) rehello() {
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, p := range d.projects {
		p.kickHello()
	}
}

// kickHello has p's loop say hello again.
func (p *project) kickHello() {
	select {
	case p.helloKick <- struct{}{}:
	default:
	}
}

// attachLocked attaches a project, or changes its share.
func (d *Daemon) attachLocked(u string, share float64) error {
	if err := checkProjectURL(u); err != nil {
		return err
	}
	if share == 0 {
		share = DefaultShare
	}
	if share < 0 || share > 1e6 || math.IsNaN(share) {
		return fmt.Errorf("resource share %g: must be a number from 1 to 1000000 (default %d)", share, DefaultShare)
	}
	d.dirty = true
	if p := d.projects[u]; p != nil {
		p.plan.Share = share
		return nil
	}
	p := newProject(u, share)
	d.projects[u] = p
	if d.runCtx != nil && d.runCtx.Err() == nil {
		d.startProjectLocked(p)
	}
	return nil
}

// detachLocked leaves a project: its tasks are dropped (the project gives
// them to other hosts when their leases run out) and its unsent reports
// removed.
func (d *Daemon) detachLocked(u string) error {
	p := d.projects[u]
	if p == nil {
		var urls []string
		for k := range d.projects {
			urls = append(urls, k)
		}
		sort.Strings(urls)
		return fmt.Errorf("not attached to %s (attached: %s)", u, strings.Join(urls, ", "))
	}
	delete(d.projects, u)
	if p.cancel != nil {
		p.cancel()
	}
	for _, t := range p.tasksLocked(d) {
		d.abortLocked(t)
	}
	paths, _ := filepath.Glob(filepath.Join(d.cfg.DataDir, "reports", projectKey(u)+"-*.json"))
	for _, path := range paths {
		os.Remove(path)
	}
	removeAttachment(d.cfg.DataDir, u)
	d.dirty = true
	return nil
}
