package chaos

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"

	wu "github.com/momonga-project/momonga/workunits"
)

// output is what every simulated volunteer reports as its result.
var output = []byte("42\n")

// load is the simulated volunteers and what they got.
type load struct {
	cfg   Config
	vols  []*volunteer
	units int // work units queued

	mu       sync.Mutex
	attempts []attempt
	skipped  int               // requests due while every volunteer waited for an answer
	assigned map[string]string // task → the host it was given to
	dups     []string          // tasks given to a second host
	acked    map[string]bool   // tasks whose result was acknowledged
	refused  []string          // results the scheduler refused
	retried  int               // requests sent again after the run
}

// attempt is one request sent by a volunteer.
type attempt struct {
	sent, done time.Time
	op         string
	kind       string // "" when served
}

// volunteer is a simulated volunteer host: hello, then work and result
// requests, each with the next sequence number; a request that is not
// answered, or answered with an error, is sent again with its number
// until it is answered, so the scheduler applies it once.
type volunteer struct {
	host string
	nc   *nats.Conn
	busy atomic.Bool

	// Owned by the goroutine that holds busy.
	next    uint64 // the next request's number
	seq     uint64 // the current request's
	op      string // the current request's: OpWork or OpResult
	pending bool   // the current request has not been answered yet
	task    string // held: its result not yet acknowledged
}

func newLoad(ctx context.Context, cfg Config, url string) (*load, error) {
	l := &load{cfg: cfg, assigned: map[string]string{}, acked: map[string]bool{}}
	for i := range cfg.Volunteers {
		host := fmt.Sprintf("chaos-%03d", i)
		nc, err := nats.Connect(url, nats.Name("momonga chaos volunteer "+host), nats.MaxReconnects(-1))
		if err != nil {
			l.close()
			return nil, fmt.Errorf("chaos: connect volunteer %s: %w", host, err)
		}
		v := &volunteer{host: host, nc: nc}
		l.vols = append(l.vols, v)
		if err := v.hello(ctx, cfg.Timeout); err != nil {
			l.close()
			return nil, err
		}
	}
	return l, nil
}

func (l *load) close() {
	for _, v := range l.vols {
		v.nc.Close()
	}
}

func (v *volunteer) hello(ctx context.Context, timeout time.Duration) error {
	for {
		msg, err := v.nc.Request(wu.VolunteerSubject(v.host, wu.OpHello), wu.Encode(wu.Hello{V: wu.WireVersion, Host: wu.HostInfo{Name: v.host, CPUs: 1}}), timeout)
		if err == nil {
			var r wu.HelloReply
			if err := json.Unmarshal(msg.Data, &r); err != nil {
				return fmt.Errorf("chaos: hello of %s: %w", v.host, err)
			}
			if r.Error != nil {
				return fmt.Errorf("chaos: hello of %s: %w", v.host, r.Error)
			}
			v.next = r.NextSeq
			return nil
		}
		if ctx.Err() != nil {
			return fmt.Errorf("chaos: hello of %s: %w", v.host, err)
		}
	}
}

// run sends cfg.Rate requests a second from t0 for d, each from the next
// volunteer not waiting for an answer, and returns once every request sent
// is answered or timed out.
func (l *load) run(ctx context.Context, t0 time.Time, d time.Duration) {
	var wg sync.WaitGroup
	defer wg.Wait()
	interval := time.Duration(float64(time.Second) / l.cfg.Rate)
	timer := time.NewTimer(0)
	defer timer.Stop()
	next := 0
	for i := 0; ; i++ {
		due := t0.Add(time.Duration(i) * interval)
		if due.Sub(t0) >= d {
			return
		}
		timer.Reset(time.Until(due))
		select {
		case <-ctx.Done():
			return
		case <-timer.C:
		}
		var v *volunteer
		for j := range l.vols {
			if c := l.vols[(next+j)%len(l.vols)]; c.busy.CompareAndSwap(false, true) {
				v, next = c, (next+j+1)%len(l.vols)
				break
			}
		}
		if v == nil {
			l.mu.Lock()
			l.skipped++
			l.mu.Unlock()
			continue
		}
		wg.Go(func() {
			defer v.busy.Store(false)
			l.record(v.request(l))
		})
	}
}

// drain sends every request that was not answered during the run again
// until it is, so that each volunteer knows what the scheduler holds for
// it; it returns how many volunteers still have one unanswered.
func (l *load) drain(ctx context.Context) int {
	var wg sync.WaitGroup
	var left atomic.Int32
	for _, v := range l.vols {
		if !v.pending {
			continue
		}
		wg.Go(func() {
			for v.pending {
				if ctx.Err() != nil {
					left.Add(1)
					return
				}
				a := v.request(l)
				l.mu.Lock()
				l.retried++
				l.mu.Unlock()
				if a.kind != "" {
					select {
					case <-ctx.Done():
					case <-time.After(100 * time.Millisecond):
					}
				}
			}
		})
	}
	wg.Wait()
	return int(left.Load())
}

func (l *load) record(a attempt) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.attempts = append(l.attempts, a)
}

// request sends the volunteer's current request, or its next one, once.
func (v *volunteer) request(l *load) attempt {
	if !v.pending {
		v.seq, v.next = v.next, v.next+1
		v.op = wu.OpWork
		if v.task != "" {
			v.op = wu.OpResult
		}
		v.pending = true
	}
	var body []byte
	if v.op == wu.OpWork {
		body = wu.Encode(wu.WorkRequest{V: wu.WireVersion, Seq: v.seq, Slots: 1})
	} else {
		body = wu.Encode(wu.Report{V: wu.WireVersion, Seq: v.seq, Task: v.task, Outcome: wu.OutcomeSuccess,
			Output: wu.HashOf(output), OutputSize: int64(len(output)), CPUSeconds: 1})
	}
	a := attempt{sent: time.Now(), op: v.op}
	msg, err := v.nc.Request(wu.VolunteerSubject(v.host, v.op), body, l.cfg.Timeout)
	a.done = time.Now()
	switch {
	case errors.Is(err, nats.ErrTimeout):
		a.kind = "timeout"
	case errors.Is(err, nats.ErrNoResponders):
		a.kind = "no responders"
	case err != nil:
		a.kind = "nats: " + err.Error()
	default:
		a.kind = v.answered(l, msg.Data)
	}
	return a
}

// answered takes in the reply to the current request and returns "" or
// the kind of error it carries.
func (v *volunteer) answered(l *load, data []byte) string {
	var r struct {
		Error       *wu.Error       `json:"error"`
		Assignments []wu.Assignment `json:"assignments"`
	}
	if err := json.Unmarshal(data, &r); err != nil {
		return "malformed reply"
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if r.Error != nil {
		if v.op == wu.OpResult && r.Error.Code == wu.CodeNotAssigned {
			// The scheduler lost the task's assignment: a fault of the run,
			// recorded, and the volunteer moves on.
			l.refused = append(l.refused, v.task)
			v.task, v.pending = "", false
		}
		return "error reply: " + r.Error.Code
	}
	v.pending = false
	switch v.op {
	case wu.OpWork:
		for _, a := range r.Assignments {
			if h, ok := l.assigned[a.Task]; ok && h != v.host {
				l.dups = append(l.dups, fmt.Sprintf("%s to %s and %s", a.Task, h, v.host))
			}
			l.assigned[a.Task] = v.host
			v.task = a.Task
		}
	case wu.OpResult:
		l.acked[v.task] = true
		v.task = ""
	}
	return ""
}

// held lists the tasks each volunteer holds, by host.
func (l *load) held() map[string]int {
	m := map[string]int{}
	for _, v := range l.vols {
		if v.task != "" {
			m[v.host]++
		}
	}
	return m
}

// summary counts the attempts sent during the run.
func (l *load) summary(t0 time.Time, d time.Duration) (requests, served int, errs map[string]int, successes []time.Duration, p50, p99 time.Duration) {
	l.mu.Lock()
	defer l.mu.Unlock()
	errs = map[string]int{}
	var lat []time.Duration
	for _, a := range l.attempts {
		requests++
		if a.kind != "" {
			errs[a.kind]++
			continue
		}
		served++
		successes = append(successes, a.done.Sub(t0))
		lat = append(lat, a.done.Sub(a.sent))
	}
	slices.Sort(lat)
	if n := len(lat); n > 0 {
		p50, p99 = lat[n/2], lat[min(n-1, n*99/100)]
	}
	return
}
