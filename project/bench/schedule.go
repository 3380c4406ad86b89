package bench

import (
	"container/heap"
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strconv"
	"time"

	"github.com/momonga-project/momonga/project/sched"
	"github.com/momonga-project/momonga/vpeer"
	wu "github.com/momonga-project/momonga/workunits"
)

// Schedule is the scheduling simulation (`momonga-project bench
// schedule`): a synthetic population of volunteer hosts works through a
// stream of work units of mixed sizes and deadlines, in virtual time,
// through the real scheduler state machine (sched.Machine, in-process, no
// NATS), once for each scheduling policy. Hosts differ in speed (log-normal)
// and cores; their benchmarks are off by a random factor; one in ten is
// unreliable and silently drops half the tasks it takes; hosts leave for
// good after an exponential lifetime and others join in their place. A
// host asks for as many tasks as it has idle cores, runs them, reports
// them, beats every hour for what it holds, and asks again after a back-off
// when it got nothing, or at once when the scheduler names it as waiting
// for work.

// ScheduleConfig says what Schedule simulates.
type ScheduleConfig struct {
	Hosts int // hosts at any time; default 10,000
	Units int // work units, submitted in ten batches a quarter of an hour apart; default 100,000
	// Unreliable is the share of hosts that drop tasks; default 0.1.
	Unreliable float64
	// Lifetime is a host's mean time before it leaves for good; default 3
	// days.
	Lifetime time.Duration
	// Policies are simulated one after the other; default fcfs, then
	// capability.
	Policies []string
	Seed     uint64
	Progress func(ScheduleRow)
}

// ScheduleRow is one policy's outcome.
type ScheduleRow struct {
	Policy string `json:"policy"`
	Units  int    `json:"units"`
	Valid  int    `json:"valid"`
	Failed int    `json:"failed"` // units in error: no result in time after every replica allowed
	// Makespan is when the last unit was decided, from the first
	// submission; turnaround is a unit's time from its submission to its
	// validation.
	Makespan       time.Duration `json:"makespan_ns"`
	MeanTurnaround time.Duration `json:"mean_turnaround_ns"`
	P99Turnaround  time.Duration `json:"p99_turnaround_ns"`
	// WastedCPU is the share of the CPU time hosts spent on tasks whose
	// result was not used: dropped, lost with a host that left, reported
	// after the deadline or after the task went to another host.
	WastedCPU float64 `json:"wasted_cpu"`
	// MissedDeadlines counts tasks whose deadline passed before their host
	// finished them: reported late, or aborted by the scheduler for it.
	MissedDeadlines int     `json:"missed_deadlines"`
	Assignments     int     `json:"assignments"`
	Entries         uint64  `json:"entries"` // log entries the state machine applied
	Seconds         float64 `json:"seconds"` // wall time of the simulation
}

// Job sizes of the simulation: the share of units, their size and their
// deadline.
var simJobs = []struct {
	share    float64
	fpops    float64
	deadline time.Duration
}{
	{0.50, 2e12, 6 * time.Hour},  // 11 minutes on a 3 GFLOPS core
	{0.35, 2e13, 12 * time.Hour}, // 2 hours
	{0.15, 1e14, 24 * time.Hour}, // 9 hours; a day and a half on the slowest twentieth
}

// Schedule runs every policy and returns one row each.
func Schedule(ctx context.Context, cfg ScheduleConfig) ([]ScheduleRow, error) {
	if cfg.Hosts <= 0 {
		cfg.Hosts = 10_000
	}
	if cfg.Units <= 0 {
		cfg.Units = 100_000
	}
	if cfg.Unreliable < 0 || cfg.Unreliable > 1 {
		return nil, fmt.Errorf("bench schedule: unreliable share %g: use 0 to 1", cfg.Unreliable)
	}
	if cfg.Unreliable == 0 {
		cfg.Unreliable = 0.1
	}
	if cfg.Lifetime <= 0 {
		cfg.Lifetime = 72 * time.Hour
	}
	if len(cfg.Policies) == 0 {
		cfg.Policies = []string{sched.PolicyFCFS, sched.PolicyCapability}
	}
	var rows []ScheduleRow
	for _, p := range cfg.Policies {
		if p != sched.PolicyFCFS && p != sched.PolicyCapability {
			return rows, fmt.Errorf("bench schedule: unknown policy %q: use %s or %s", p, sched.PolicyFCFS, sched.PolicyCapability)
		}
		row, err := newScheduleSim(cfg, p).run(ctx)
		if err != nil {
			return rows, fmt.Errorf("bench schedule: %s: %w", p, err)
		}
		if cfg.Progress != nil {
			cfg.Progress(row)
		}
		rows = append(rows, row)
	}
	return rows, nil
}

// Virtual time of the simulation, in seconds from its start.
const (
	simTick    = 60.0   // how often time enters the log
	simBeat    = 3600.0 // how often a host beats
	simBackoff = 300.0  // first wait after an empty work reply, doubled up to simMaxWait
	simMaxWait = 3600.0
	simBatches = 10
	simEvery   = 900.0 // between batches
	simLimit   = 30 * 86400.0
)

type simEventKind int

const (
	evTick simEventKind = iota
	evSubmit
	evAsk    // a host asks for work
	evFinish // a host's task ends (done, or dropped)
	evBeat
	evLeave // a host leaves for good
)

type simEvent struct {
	at   float64
	seq  uint64 // order of events at the same time: as scheduled
	kind simEventKind
	host *schedHost
	task *simTask
	gen  int // evAsk, evBeat: the host's generation of such events when scheduled
}

type simEvents []*simEvent

func (q simEvents) Len() int { return len(q) }
func (q simEvents) Less(i, j int) bool {
	if q[i].at != q[j].at {
		return q[i].at < q[j].at
	}
	return q[i].seq < q[j].seq
}
func (q simEvents) Swap(i, j int) { q[i], q[j] = q[j], q[i] }
func (q *simEvents) Push(x any)   { *q = append(*q, x.(*simEvent)) }
func (q *simEvents) Pop() any {
	old := *q
	e := old[len(old)-1]
	*q = old[:len(old)-1]
	return e
}

type schedHost struct {
	id         string
	speed      float64 // FLOPS of one core
	cores      int
	unreliable bool
	gone       bool
	running    []*simTask
	queued     []*simTask
	askGen     int     // ask events scheduled so far; a newer one supersedes
	wait       float64 // back-off after an empty reply
	seq        uint64
}

type simTask struct {
	id, unit string
	fpops    float64
	deadline float64
	started  float64
	dropped  bool // the host drops it silently
	host     *schedHost
}

type scheduleSim struct {
	cfg    ScheduleConfig
	policy string
	rng    *rand.Rand
	m      *sched.Machine
	entry  uint64
	now    float64
	events simEvents
	evSeq  uint64
	hosts  map[string]*schedHost
	nextID int
	admin  *schedHost // the project's tools, as a requester

	submitted   map[string]float64 // unit → submission time
	decided     map[string]bool
	turnaround  []float64
	cpu, wasted float64
	row         ScheduleRow
}

func newScheduleSim(cfg ScheduleConfig, policy string) *scheduleSim {
	return &scheduleSim{
		cfg: cfg, policy: policy,
		rng: rand.New(rand.NewPCG(cfg.Seed, 0x7363686564)),
		m: sched.New(sched.Config{Project: "simulation", Lease: 4 * time.Hour, Beat: time.Hour, Retry: 5 * time.Minute,
			DeadlineSecs: 86400, Policy: policy}),
		hosts: map[string]*schedHost{}, submitted: map[string]float64{}, decided: map[string]bool{},
		row: ScheduleRow{Policy: policy, Units: cfg.Units}, admin: &schedHost{id: "adm:sim"},
	}
}

var simEpoch = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

func (s *scheduleSim) at(t float64) time.Time {
	return simEpoch.Add(time.Duration(t * float64(time.Second)))
}

func (s *scheduleSim) schedule(e *simEvent) {
	s.evSeq++
	e.seq = s.evSeq
	heap.Push(&s.events, e)
}

// apply applies one entry at the current virtual time and hands its
// outputs on.
func (s *scheduleSim) apply(e vpeer.Entry) []byte {
	s.entry++
	e.Seq, e.Time = s.entry, s.at(s.now)
	reply := s.m.Apply(e)
	for _, o := range s.m.Outputs() {
		if w, ok := o.(sched.WorkWaiting); ok {
			for _, id := range w.Hosts {
				if h := s.hosts[id]; h != nil && !h.gone {
					s.ask(h, s.now)
				}
			}
		}
	}
	return reply
}

func (s *scheduleSim) request(h *schedHost, op string, body any, out any) error {
	h.seq++
	return reply(s.apply(vpeer.Entry{Payload: wu.Encode(wu.Command{V: wu.WireVersion, Op: op, Host: h.id, Seq: h.seq, Body: wu.Encode(body)})}), out)
}

// join brings a new host.
func (s *scheduleSim) join() error {
	s.nextID++
	h := &schedHost{id: "h" + strconv.Itoa(s.nextID), speed: 3e9 * math.Exp(0.8*s.rng.NormFloat64()),
		cores: []int{1, 2, 2, 4, 4, 8}[s.rng.IntN(6)], unreliable: s.rng.Float64() < s.cfg.Unreliable, wait: simBackoff}
	s.hosts[h.id] = h
	// Benchmarks are off by up to a factor of two or so either way.
	bench := h.speed * math.Exp(0.3*s.rng.NormFloat64())
	var hr wu.HelloReply
	if err := s.request(h, wu.OpHello, wu.Hello{V: wu.WireVersion, Host: wu.HostInfo{Name: h.id, CPUs: h.cores, FLOPS: bench}}, &hr); err != nil {
		return err
	}
	h.seq = hr.NextSeq - 1
	s.ask(h, s.now)
	s.schedule(&simEvent{at: s.now + simBeat*s.rng.Float64(), kind: evBeat, host: h})
	s.schedule(&simEvent{at: s.now + s.cfg.Lifetime.Seconds()*s.rng.ExpFloat64(), kind: evLeave, host: h})
	return nil
}

// ask makes h ask for work at t, and not at any time asked for before.
func (s *scheduleSim) ask(h *schedHost, t float64) {
	h.askGen++
	s.schedule(&simEvent{at: t, kind: evAsk, host: h, gen: h.askGen})
}

// submit submits batch number batch: its units in a random order of
// sizes, each run of one size in a submission of its own (a deadline is a
// submission's).
func (s *scheduleSim) submit(batch int) error {
	n := s.cfg.Units / simBatches
	if batch == simBatches-1 {
		n = s.cfg.Units - n*(simBatches-1)
	}
	kinds := make([]int, n)
	for i := range kinds {
		r := s.rng.Float64()
		for kinds[i] < len(simJobs)-1 && r >= simJobs[kinds[i]].share {
			r -= simJobs[kinds[i]].share
			kinds[i]++
		}
	}
	for i := 0; i < n; {
		job := simJobs[kinds[i]]
		sub := wu.Submit{V: wu.WireVersion, Batch: fmt.Sprintf("b%d", batch), App: "sim", Replication: 1, Quorum: 1, DeadlineSeconds: job.deadline.Seconds()}
		for ; i < n && simJobs[kinds[i]] == job && len(sub.Units) < wu.MaxUnitsPerSubmit; i++ {
			sub.Units = append(sub.Units, wu.UnitSpec{Args: []string{strconv.Itoa(batch), strconv.Itoa(i)}, FPOps: job.fpops})
		}
		var sr wu.SubmitReply
		if err := s.request(s.admin, wu.OpSubmit, sub, &sr); err != nil {
			return fmt.Errorf("submit: %w", err)
		}
		for _, id := range sr.Units {
			s.submitted[id] = s.now
		}
	}
	return nil
}

// workReply is what a simulated host reads of a work reply.
type workReply struct {
	Assignments []struct {
		Task     string    `json:"task"`
		WorkUnit string    `json:"work_unit"`
		FPOps    float64   `json:"fpops"`
		Deadline time.Time `json:"deadline"`
	} `json:"assignments"`
}

func (s *scheduleSim) askNow(h *schedHost) error {
	free := h.cores - len(h.running) - len(h.queued)
	if free <= 0 || h.gone {
		return nil
	}
	var rep workReply
	if err := s.request(h, wu.OpWork, wu.WorkRequest{V: wu.WireVersion, Seq: h.seq + 1, Slots: free}, &rep); err != nil {
		return err
	}
	if len(rep.Assignments) == 0 {
		s.ask(h, s.now+h.wait)
		h.wait = min(2*h.wait, simMaxWait)
		return nil
	}
	h.wait = simBackoff
	for _, a := range rep.Assignments {
		s.row.Assignments++
		t := &simTask{id: a.Task, unit: a.WorkUnit, fpops: a.FPOps, deadline: a.Deadline.Sub(simEpoch).Seconds(), host: h}
		t.dropped = h.unreliable && s.rng.IntN(2) == 0
		h.queued = append(h.queued, t)
	}
	s.startTasks(h)
	return nil
}

// startTasks starts queued tasks on h's idle cores.
func (s *scheduleSim) startTasks(h *schedHost) {
	for len(h.running) < h.cores && len(h.queued) > 0 {
		t := h.queued[0]
		h.queued = h.queued[1:]
		t.started = s.now
		h.running = append(h.running, t)
		run := t.fpops / h.speed
		if t.dropped {
			run *= s.rng.Float64() // given up part way
		}
		s.schedule(&simEvent{at: s.now + run, kind: evFinish, host: h, task: t})
	}
}

func (s *scheduleSim) finish(h *schedHost, t *simTask) error {
	if h.gone {
		return nil
	}
	i := slices.Index(h.running, t)
	if i < 0 {
		return nil // aborted meanwhile
	}
	h.running = slices.Delete(h.running, i, i+1)
	spent := s.now - t.started
	s.cpu += spent
	switch {
	case t.dropped:
		s.wasted += spent
	default:
		if s.now > t.deadline {
			s.row.MissedDeadlines++
		}

		err := s.request(h, wu.OpResult, wu.Report{V: wu.WireVersion, Seq: h.seq + 1, Task: t.id, Outcome: wu.OutcomeSuccess,
			Output: wu.HashOf([]byte("result of " + t.unit)), OutputSize: 16, CPUSeconds: spent}, nil)
		switch {
		case err == nil && !s.decided[t.unit]:
			s.decided[t.unit] = true
			s.row.Valid++
			s.turnaround = append(s.turnaround, s.now-s.submitted[t.unit])
		case err == nil:
			s.wasted += spent // a second result for a unit decided
		case wu.ErrorCode(err) == wu.CodeNotAssigned:
			s.wasted += spent // too late: the task went to another host, or past its deadline
		default:
			return err
		}
	}
	s.startTasks(h)
	s.ask(h, s.now) // a core is free
	return nil
}

func (s *scheduleSim) beat(h *schedHost) error {
	if h.gone {
		return nil
	}
	s.schedule(&simEvent{at: s.now + simBeat, kind: evBeat, host: h})
	held := slices.Concat(h.running, h.queued)
	if len(held) == 0 {
		return nil
	}
	var ps []wu.TaskProgress
	for _, t := range held {
		ps = append(ps, wu.TaskProgress{Task: t.id, Fraction: 0.5})
	}
	var rep wu.BeatReply
	if err := s.request(h, wu.OpBeat, wu.Beat{V: wu.WireVersion, Seq: h.seq + 1, Tasks: ps}, &rep); err != nil {
		return err
	}
	for _, id := range rep.Abort {
		for _, list := range []*[]*simTask{&h.running, &h.queued} {
			if i := slices.IndexFunc(*list, func(t *simTask) bool { return t.id == id }); i >= 0 {
				t := (*list)[i]
				*list = slices.Delete(*list, i, i+1)
				if s.now > t.deadline {
					s.row.MissedDeadlines++
				}
				if list == &h.running {
					spent := s.now - t.started
					s.cpu += spent
					s.wasted += spent
				}
			}
		}
	}
	s.startTasks(h)
	return nil
}

func (s *scheduleSim) leave(h *schedHost) error {
	h.gone = true
	for _, t := range h.running {
		spent := s.now - t.started
		s.cpu += spent
		s.wasted += spent
	}
	delete(s.hosts, h.id)
	return s.join()
}

// done reports whether every unit is decided: checked on the hour, from
// the scheduler's status.
func (s *scheduleSim) done() bool {
	if len(s.submitted) < s.cfg.Units {
		return false
	}
	st := s.m.Status()
	failed := 0
	for _, b := range st.Batches {
		if b.Pending > 0 {
			return false
		}
		failed += b.Errored
	}
	s.row.Failed = failed
	return true
}

func (s *scheduleSim) run(ctx context.Context) (ScheduleRow, error) {
	started := time.Now()
	s.apply(vpeer.Entry{Tick: true})
	module := []byte("simulation")
	if err := s.request(s.admin, wu.OpAddApp, wu.AddApp{V: wu.WireVersion, Name: "sim", Hash: wu.HashOf(module), Size: int64(len(module))}, nil); err != nil {
		return s.row, err
	}
	for range s.cfg.Hosts {
		if err := s.join(); err != nil {
			return s.row, err
		}
	}
	for b := range simBatches {
		s.schedule(&simEvent{at: float64(b) * simEvery, kind: evSubmit, gen: b})
	}
	s.schedule(&simEvent{at: simTick, kind: evTick})
	for len(s.events) > 0 {
		e := heap.Pop(&s.events).(*simEvent)
		s.now = e.at
		var err error
		switch e.kind {
		case evTick:
			s.apply(vpeer.Entry{Tick: true})
			if int(s.now)%3600 == 0 && s.done() {
				s.row.Makespan = time.Duration(s.now * float64(time.Second))
				s.summarise(started)
				return s.row, nil
			}
			if s.now > simLimit {
				return s.row, fmt.Errorf("units still undecided after %v of virtual time", time.Duration(simLimit)*time.Second)
			}
			if int(s.now)%3600 == 0 && ctx.Err() != nil {
				return s.row, ctx.Err()
			}
			s.schedule(&simEvent{at: s.now + simTick, kind: evTick})
		case evSubmit:
			err = s.submit(e.gen)
		case evAsk:
			if e.gen == e.host.askGen && !e.host.gone {
				err = s.askNow(e.host)
			}
		case evFinish:
			err = s.finish(e.host, e.task)
		case evBeat:
			err = s.beat(e.host)
		case evLeave:
			err = s.leave(e.host)
		}
		if err != nil {
			return s.row, err
		}
	}
	return s.row, fmt.Errorf("the simulation ran out of events")
}

func (s *scheduleSim) summarise(started time.Time) {
	slices.Sort(s.turnaround)
	sum := 0.0
	for _, t := range s.turnaround {
		sum += t
	}
	if n := len(s.turnaround); n > 0 {
		s.row.MeanTurnaround = time.Duration(sum / float64(n) * float64(time.Second))
		s.row.P99Turnaround = time.Duration(s.turnaround[max(int(math.Ceil(0.99*float64(n)))-1, 0)] * float64(time.Second))
	}
	if s.cpu > 0 {
		s.row.WastedCPU = s.wasted / s.cpu
	}
	s.row.Entries = s.entry
	s.row.Seconds = time.Since(started).Seconds()
}
