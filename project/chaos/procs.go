package chaos

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"time"
)

// leaseHolder marks the kill of a lease holder in its event's detail.
const leaseHolder = "lease holder"

// run holds the member processes of a chaos run and what happened to them.
type run struct {
	cfg  Config
	url  string
	dir  string
	msgs chan procMsg
	quit chan struct{} // closed by stopAll: readers stop sending

	mu        sync.Mutex
	t0        time.Time   // when the load began; zero before
	procs     []*proc     // the newest process at each position
	restartAt []time.Time // when each position's next process starts; zero: none due
	downAt    []time.Time // when each position lost its last serving process; zero: it serves
	events    []timedEvent
	replaced  []time.Duration // from a departure to the replacement serving
	restored  int             // replacements that started from a snapshot
	wg        sync.WaitGroup  // the readers
}

type proc struct {
	position, gen int
	cmd           *exec.Cmd
	stdin         io.WriteCloser
	base          time.Time // its lifetime counts from here
	killAt        time.Time // zero before the run began
	ready, gone   bool
	leading       bool // its member holds the group's lease
}

type procMsg struct {
	position, gen int
	at            time.Time
	ev            *memberEvent // nil for the process's end
	err           error        // how it ended
}

type timedEvent struct {
	at time.Time
	Event
}

func newRun(cfg Config, url, dir string) *run {
	return &run{
		cfg:       cfg,
		url:       url,
		dir:       dir,
		msgs:      make(chan procMsg, 64),
		quit:      make(chan struct{}),
		procs:     make([]*proc, cfg.Members),
		restartAt: make([]time.Time, cfg.Members),
		downAt:    make([]time.Time, cfg.Members),
	}
}

// event records an event; r.mu is held.
func (r *run) event(at time.Time, position, gen int, kind, member, detail string) {
	r.events = append(r.events, timedEvent{at: at, Event: Event{Position: position, Gen: gen, Kind: kind, Member: member, Detail: detail}})
}

// start starts the gen-th process at position, its lifetime counted from
// base; r.mu is held.
func (r *run) start(position, gen int, base time.Time) {
	p := &proc{position: position, gen: gen, base: base}
	r.procs[position] = p
	if !r.t0.IsZero() {
		p.killAt = base.Add(Lifetime(r.cfg.Seed, r.cfg.HalfLife, position, gen))
	}
	fail := func(err error) {
		now := time.Now()
		p.gone = true
		r.event(now, position, gen, EventExit, "", err.Error())
		r.restartAt[position] = now.Add(max(r.cfg.Replace, time.Second))
		if r.downAt[position].IsZero() {
			r.downAt[position] = now
		}
	}
	cmd := r.cfg.MemberCommand(memberArgs(r.url, r.cfg))
	logFile, err := os.Create(filepath.Join(r.dir, "members", fmt.Sprintf("%d-%d.log", position, gen)))
	if err != nil {
		fail(err)
		return
	}
	defer logFile.Close() // the child has its own descriptor
	cmd.Stderr = logFile
	stdin, err := cmd.StdinPipe()
	if err != nil {
		fail(err)
		return
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		fail(err)
		return
	}
	if err := cmd.Start(); err != nil {
		fail(fmt.Errorf("start a member process: %w", err))
		return
	}
	p.cmd, p.stdin = cmd, stdin
	r.event(time.Now(), position, gen, EventStart, "", fmt.Sprintf("pid %d", cmd.Process.Pid))
	r.wg.Go(func() {
		send := func(m procMsg) {
			select {
			case r.msgs <- m:
			case <-r.quit:
			}
		}
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			var ev memberEvent
			if json.Unmarshal(sc.Bytes(), &ev) == nil {
				send(procMsg{position: position, gen: gen, at: time.Now(), ev: &ev})
			}
		}
		err := cmd.Wait()
		send(procMsg{position: position, gen: gen, at: time.Now(), err: err})
	})
}

// startMembers starts the first process at every position and waits until
// each has a member ready.
func (r *run) startMembers(ctx context.Context) error {
	r.mu.Lock()
	for p := range r.cfg.Members {
		r.start(p, 0, time.Time{})
	}
	r.mu.Unlock()
	ctx, cancel := context.WithTimeout(ctx, settle)
	defer cancel()
	for !r.whole() {
		select {
		case m := <-r.msgs:
			r.handle(m)
		case <-ctx.Done():
			return fmt.Errorf("chaos: the first %d members did not all become ready (logs in %s): %w", r.cfg.Members, filepath.Join(r.dir, "members"), ctx.Err())
		}
		r.mu.Lock()
		for _, p := range r.procs {
			if p.gone {
				r.mu.Unlock()
				return fmt.Errorf("chaos: member process %d ended before it was ready (log in %s)", p.position, filepath.Join(r.dir, "members"))
			}
		}
		r.mu.Unlock()
	}
	return nil
}

// whole reports whether every position has a serving member.
func (r *run) whole() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, p := range r.procs {
		if !p.ready || p.gone {
			return false
		}
	}
	return true
}

// begin starts the clock of the run and the kill schedule: the first
// processes' lifetimes count from t0.
func (r *run) begin(t0 time.Time) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.t0 = t0
	for i, p := range r.procs {
		p.base = t0
		p.killAt = t0.Add(Lifetime(r.cfg.Seed, r.cfg.HalfLife, i, p.gen))
	}
}

// control kills and replaces member processes on schedule and follows
// what they report, until ctx ends.
func (r *run) control(ctx context.Context) {
	t := time.NewTicker(5 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case m := <-r.msgs:
			r.handle(m)
		case now := <-t.C:
			r.step(now)
		}
	}
}

// step kills the processes whose time has come, if it comes before the
// end of the run, and starts the replacements that are due.
func (r *run) step(now time.Time) {
	r.mu.Lock()
	defer r.mu.Unlock()
	end := r.t0.Add(r.cfg.Duration)
	for i, p := range r.procs {
		if !p.gone && !p.killAt.IsZero() && !now.Before(p.killAt) && p.killAt.Before(end) {
			_ = p.cmd.Process.Kill() // SIGKILL where there are signals
			_ = p.stdin.Close()
			p.gone = true
			detail := fmt.Sprintf("pid %d, after %s", p.cmd.Process.Pid, p.killAt.Sub(p.base).Round(time.Millisecond))
			if p.leading {
				detail += ", " + leaseHolder
			}
			r.event(now, i, p.gen, EventKill, "", detail)
			r.restartAt[i] = p.killAt.Add(r.cfg.Replace)
			if r.downAt[i].IsZero() {
				r.downAt[i] = now
			}
		}
		if at := r.restartAt[i]; !at.IsZero() && !now.Before(at) {
			r.restartAt[i] = time.Time{}
			r.start(i, p.gen+1, at)
		}
	}
}

// handle follows a message from a member process.
func (r *run) handle(m procMsg) {
	r.mu.Lock()
	defer r.mu.Unlock()
	p := r.procs[m.position]
	if p.gen != m.gen {
		return // an earlier process at the position, killed
	}
	switch {
	case m.ev == nil:
		if p.gone {
			return // killed
		}
		p.gone = true
		detail := "exited"
		if m.err != nil {
			detail = m.err.Error()
		}
		r.event(m.at, m.position, m.gen, EventExit, "", detail)
		r.restartAt[m.position] = m.at.Add(r.cfg.Replace)
		if r.downAt[m.position].IsZero() {
			r.downAt[m.position] = m.at
		}
	case m.ev.Event == "lease" && !p.gone:
		p.leading = m.ev.Leading
		what := "lease lost"
		if m.ev.Leading {
			what = "lease taken"
		}
		r.event(m.at, m.position, m.gen, EventLease, m.ev.Member, what)
	case m.ev.Event == "ready" && !p.gone:
		p.ready = true
		from := "replayed the whole log"
		if m.ev.Restored > 0 {
			from = fmt.Sprintf("restored snapshot %d", m.ev.Restored)
		}
		r.event(m.at, m.position, m.gen, EventReady, m.ev.Member, fmt.Sprintf("slot %d, %s, applied %d", m.ev.Slot, from, m.ev.Applied))
		if down := r.downAt[m.position]; !down.IsZero() {
			r.downAt[m.position] = time.Time{}
			if !r.t0.IsZero() {
				r.replaced = append(r.replaced, m.at.Sub(down))
				if m.ev.Restored > 0 {
					r.restored++
				}
			}
		}
	}
}

// stopAll ends every member process still running: it closes their
// standard input, which they take as the signal to leave, and kills those
// that have not left within a few seconds.
func (r *run) stopAll() {
	r.mu.Lock()
	procs := append([]*proc(nil), r.procs...)
	r.mu.Unlock()
	for _, p := range procs {
		if p != nil && p.stdin != nil {
			_ = p.stdin.Close()
		}
	}
	done := make(chan struct{})
	go func() {
		for {
			select {
			case <-r.msgs:
			case <-done:
				return
			}
		}
	}()
	waited := make(chan struct{})
	go func() {
		r.wg.Wait()
		close(waited)
	}()
	select {
	case <-waited:
	case <-time.After(10 * time.Second):
		for _, p := range procs {
			if p != nil && p.cmd != nil {
				_ = p.cmd.Process.Kill()
			}
		}
		<-waited
	}
	close(r.quit)
	close(done)
}

// eventsCopy returns the events with their times since t0.
func (r *run) eventsCopy() []Event {
	r.mu.Lock()
	defer r.mu.Unlock()
	evs := make([]Event, len(r.events))
	for i, e := range r.events {
		evs[i] = e.Event
		evs[i].At = e.at.Sub(r.t0)
	}
	return evs
}
