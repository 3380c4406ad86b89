// Package bench measures the project side of momonga on this machine
// (`momonga-project bench`).
//
// Dispatch drives a real project server (DESIGN §1) the way volunteers do:
// each simulated volunteer has its own host id and NATS connection, says
// hello, then sends numbered work requests on vol.H.work, each for as many
// tasks as it has free slots (one by default). Every
// request goes the whole way: gateway, append to the scheduler's JetStream
// log, the vpeer member applying it to the scheduler state machine, the reply
// to the volunteer's inbox. In the same run, on the same server, it times
// synchronous JetStream publishes of the same records to a plain stream, so
// what the gateway and the member add on top of storing a record shows as a
// ratio. Beside both it times a bare request and reply through the same
// server (echo): a responder that answers at once, storing and applying
// nothing, which bounds what any path that answers through NATS can do.
package bench

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"runtime"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/momonga-project/momonga/apps"
	"github.com/momonga-project/momonga/internal/scratch"
	"github.com/momonga-project/momonga/project/admin"
	"github.com/momonga-project/momonga/project/gateway"
	"github.com/momonga-project/momonga/project/sched"
	"github.com/momonga-project/momonga/project/server"
	wu "github.com/momonga-project/momonga/workunits"
)

// Transport is how simulated volunteers reach the server.
type Transport string

const (
	// TCP connects to the server's client URL over loopback, as volunteers
	// on other machines do.
	TCP Transport = "tcp"
	// InProcess connects without a socket, which leaves out the cost of
	// TCP.
	InProcess Transport = "in-process"
)

// Config says what Dispatch measures.
type Config struct {
	// Volunteers lists the levels: how many volunteers request work at once.
	// Default 1, 8, 64.
	Volunteers []int
	// Transports are measured one after the other, every level each; default
	// TCP, then InProcess.
	Transports []Transport
	// Duration is how long each level runs, for work requests and for raw
	// publishes alike; default 3s.
	Duration time.Duration
	// Requests > 0 makes each volunteer (and each raw publisher) send this
	// many requests instead of running for Duration.
	Requests int
	// Slots is how many tasks each work request asks for; default 1.
	Slots int
	// Tasks is how many tasks are queued for each level; default 200,000
	// for each slot. With Requests set, at least as many as the level
	// takes.
	Tasks int
	// Batch is how the gateway groups requests into log records; its
	// defaults when zero, none with Max 1.
	Batch gateway.Batching
	// DataDir holds the servers' data, one directory per level; "" uses a
	// temporary directory, removed at the end.
	DataDir string
	// Secure runs the project as a real one runs: every volunteer a user of
	// its own, attached, connecting with its own credentials into an
	// account of its own, its requests crossing into the project's account.
	// Without it NATS is open (serve --open).
	Secure bool
	// WorkProfile, if set, names CPU profiles of the work requests alone:
	// the first of each level's rounds, written to WorkProfile.TRANSPORT-N.
	WorkProfile string
	// Progress, if set, is called with each row as soon as it is measured.
	Progress func(Row)
	Logger   *slog.Logger
}

// Measurement is the outcome of one kind of request at one level.
type Measurement struct {
	Requests  int           `json:"requests"`
	Seconds   float64       `json:"seconds"`
	PerSecond float64       `json:"per_second"`
	P50       time.Duration `json:"p50_ns"`
	P99       time.Duration `json:"p99_ns"`
	// CPUPerRequest is the CPU time the whole process (server and simulated
	// volunteers alike) spent per request; unlike the rates, other programs
	// running on the machine hardly change it. Zero where the system does
	// not tell.
	CPUPerRequest time.Duration `json:"cpu_per_request_ns,omitempty"`
}

// Row is one level: so many volunteers over one transport.
type Row struct {
	Transport  Transport `json:"transport"`
	Volunteers int       `json:"volunteers"`
	Slots      int       `json:"slots"`        // tasks asked for in each request
	Queued     int       `json:"tasks_queued"` // when the level started
	// Dispatch counts work requests, each answered with Slots tasks.
	Dispatch Measurement `json:"dispatch"`
	// Assignments is how many tasks the work requests were given, and
	// AssignmentsPerSecond how many a second.
	Assignments          int     `json:"assignments"`
	AssignmentsPerSecond float64 `json:"assignments_per_second"`
	// RawPublish counts synchronous publishes of the same records to a plain
	// R1 file stream, by as many publishers, each on its own connection.
	RawPublish Measurement `json:"raw_publish"`
	// Ratio is AssignmentsPerSecond / RawPublish.PerSecond.
	Ratio float64 `json:"ratio"`
	// Echo counts work requests sent, by as many requesters, each on its
	// own connection, to a responder on the project's own in-process
	// connection that answers each at once with the bytes of a real work
	// reply: one trip through the server each way, nothing stored or
	// applied. EchoRatio is Echo.PerSecond / RawPublish.PerSecond, what
	// Ratio would be with one task per request if the log and the
	// scheduler cost nothing.
	Echo      Measurement `json:"echo"`
	EchoRatio float64     `json:"echo_ratio"`
}

// Report is what Dispatch found.
type Report struct {
	CPUs int   `json:"cpus"`
	Rows []Row `json:"rows"`
}

// Names of the bench's own assets on the server.
const (
	rawStream   = "BENCH_RAW"
	rawSubject  = "bench.raw"
	echoSubject = "bench.echo"
	appName     = "primes"
	// batchUnits is the size of each batch queued: every submission to a
	// batch goes through the names of the units it already holds, so one
	// huge batch would make queueing slower and slower.
	batchUnits = wu.MaxUnitsPerSubmit
)

// requestTimeout bounds one request. A bench does not retry: an answer this
// late means something is broken, not slow.
const requestTimeout = 10 * time.Second

// errQueueEmpty is a work reply without a task.
var errQueueEmpty = errors.New("the project had no task to give")

// Dispatch measures every level of cfg, each on a project server of its
// own started with the same queue: the scheduler's state grows with every
// task handed out (its ticks go through every task out on a host), so a
// level measured after others would carry their load. It fails if a task is
// handed out twice, or if the scheduler's record of assigned tasks disagrees
// with what the volunteers received.
func Dispatch(ctx context.Context, cfg Config) (Report, error) {
	if err := cfg.setDefaults(); err != nil {
		return Report{}, err
	}
	dir, remove, err := scratch.Dir(cfg.DataDir, "momonga-bench-")
	if err != nil {
		return Report{}, fmt.Errorf("bench: %w", err)
	}
	defer remove()
	rep := Report{CPUs: runtime.NumCPU()}
	for _, t := range cfg.Transports {
		for _, n := range cfg.Volunteers {
			row, err := measureLevel(ctx, cfg, filepath.Join(dir, fmt.Sprintf("%s-%d", t, n)), t, n)
			if err != nil {
				return rep, fmt.Errorf("bench: %d volunteers over %s: %w", n, t, err)
			}
			cfg.Logger.Info("level measured", "transport", t, "volunteers", n,
				"assignments_per_s", row.Dispatch.PerSecond, "raw_publish_per_s", row.RawPublish.PerSecond)
			if cfg.Progress != nil {
				cfg.Progress(row)
			}
			rep.Rows = append(rep.Rows, row)
		}
	}
	return rep, nil
}

// measureLevel measures one level on a server of its own in dir.
func measureLevel(ctx context.Context, cfg Config, dir string, t Transport, n int) (Row, error) {
	r, err := start(ctx, cfg, dir)
	if err != nil {
		return Row{}, err
	}
	defer r.close()
	if err := r.queue(ctx, max(cfg.Tasks, n*cfg.Requests*cfg.Slots)); err != nil {
		return Row{}, err
	}
	row, err := r.level(ctx, t, n)
	if err != nil {
		return Row{}, err
	}
	return row, r.check()
}

func (cfg *Config) setDefaults() error {
	if len(cfg.Volunteers) == 0 {
		cfg.Volunteers = []int{1, 8, 64}
	}
	if len(cfg.Transports) == 0 {
		cfg.Transports = []Transport{TCP, InProcess}
	}
	if cfg.Duration <= 0 {
		cfg.Duration = 3 * time.Second
	}
	if cfg.Slots <= 0 {
		cfg.Slots = 1
	}
	if cfg.Tasks <= 0 {
		cfg.Tasks = 200_000 * cfg.Slots
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	for _, n := range cfg.Volunteers {
		if n < 1 || n > 10_000 {
			return fmt.Errorf("bench: %d volunteers: use 1 to 10000", n)
		}
	}
	for _, t := range cfg.Transports {
		if t != TCP && t != InProcess {
			return fmt.Errorf("bench: unknown transport %q: use %q or %q", t, TCP, InProcess)
		}
	}
	if cfg.Slots > 256 {
		return fmt.Errorf("bench: %d slots: a work request asks for 1 to 256 tasks", cfg.Slots)
	}
	if cfg.Requests < 0 {
		return fmt.Errorf("bench: %d requests per volunteer", cfg.Requests)
	}
	return nil
}

// run is one server and what its volunteers got.
type run struct {
	cfg    Config
	srv    *server.Server
	nc     *nats.Conn
	adm    *admin.Client
	queued int // tasks submitted, in batches of batchUnits
	// hostOpts are each attached volunteer's credentials; projectOpts the
	// project's own, for raw publishers (secured servers only).
	hostOpts    map[string][]nats.Option
	projectOpts []nats.Option
	// received holds the tasks each volunteer host was given, in order.
	received map[string][]string
	// aReply is the first work reply a volunteer received, as it came: what
	// the echo responder answers.
	aReply atomic.Pointer[[]byte]
}

// start brings up a server in dir with the primes app published and the
// stream raw publishes go to.
func start(ctx context.Context, cfg Config, dir string) (_ *run, err error) {
	r := &run{cfg: cfg, received: map[string][]string{}, hostOpts: map[string][]nats.Option{}}
	defer func() {
		if err != nil {
			r.close()
		}
	}()
	_, key, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, err
	}
	scfg := server.Embedded(dir, "127.0.0.1:0")
	// Leases outlast the level: a task that came back to the queue and
	// went out again would count twice. Each simulated volunteer stands
	// for many hosts' requests: none is bounded by its cores.
	scfg.Sched = sched.Config{Project: "momonga bench", Lease: 24 * time.Hour, Beat: time.Hour, MaxTasksPerCore: -1}
	scfg.Logger = cfg.Logger
	scfg.Batch = cfg.Batch
	// The dispatch path measured is the same with credentials (they are
	// checked once per connection), and the volunteers are asked to go as
	// fast as they can: no per-host rate limit.
	scfg.Trust = server.Trust{Open: !cfg.Secure, SigningKey: key.Public().(ed25519.PublicKey), HostRate: 1e12, HostBurst: 1 << 30}
	r.srv, err = server.Start(ctx, scfg)
	if err != nil {
		return nil, fmt.Errorf("start project server: %w", err)
	}
	if p := r.srv.AdminCreds(); p != "" {
		r.projectOpts = []nats.Option{nats.UserCredentials(p)}
	}
	if r.adm, err = admin.Dial(ctx, r.srv.ClientURL(), r.projectOpts...); err != nil {
		return nil, err
	}
	if _, err := r.adm.AddApp(ctx, appName, apps.Primes, wu.SignApp(key, apps.Primes).Encode(), wu.Policy{}); err != nil {
		return nil, fmt.Errorf("publish %s: %w", appName, err)
	}
	if r.nc, err = nats.Connect("", r.srv.ProjectConnectOptions(nats.Name("momonga bench"))...); err != nil {
		return nil, fmt.Errorf("connect: %w", err)
	}
	js, err := jetstream.New(r.nc)
	if err != nil {
		return nil, fmt.Errorf("jetstream: %w", err)
	}
	// The same kind of stream as the scheduler's log (jetlog.Open), with
	// nobody reading it.
	_, err = js.CreateStream(ctx, jetstream.StreamConfig{
		Name:      rawStream,
		Subjects:  []string{rawSubject},
		Retention: jetstream.LimitsPolicy,
		Storage:   jetstream.FileStorage,
		Replicas:  1,
	})
	if err != nil {
		return nil, fmt.Errorf("create stream %s: %w", rawStream, err)
	}
	return r, nil
}

// queue submits n work units with one replica each.
func (r *run) queue(ctx context.Context, n int) error {
	begin := time.Now()
	for r.queued < n {
		s := wu.Submit{
			Batch: fmt.Sprintf("bench-%04d", r.queued/batchUnits), App: appName, Replication: 1, Quorum: 1,
			DeadlineSeconds: 7 * 24 * 3600,
		}
		for i := r.queued; i < min(r.queued+batchUnits, n); i++ {
			s.Units = append(s.Units, wu.UnitSpec{Args: []string{strconv.Itoa(i * 1000), strconv.Itoa((i + 1) * 1000)}})
		}
		ids, err := r.adm.Submit(ctx, s)
		r.queued += len(ids)
		if err != nil {
			return fmt.Errorf("queue tasks: %w", err)
		}
	}
	r.cfg.Logger.Info("tasks queued", "tasks", r.queued, "took", time.Since(begin))
	return nil
}

func (r *run) close() {
	if r.adm != nil {
		r.adm.Close()
	}
	if r.nc != nil {
		r.nc.Close()
	}
	if r.srv != nil {
		if err := r.srv.Close(); err != nil {
			r.cfg.Logger.Warn("project server stopped with an error", "err", err)
		}
	}
}

// check makes sure the assignments counted were real: no task went to two
// volunteers, and the scheduler holds every task a volunteer received as
// assigned to that volunteer, and no other.
func (r *run) check() error {
	holder := map[string]string{}
	for host, tasks := range r.received {
		for _, t := range tasks {
			if h, dup := holder[t]; dup {
				return fmt.Errorf("bench: task %s was given twice, to %s and to %s", t, h, host)
			}
			holder[t] = host
		}
	}
	st := r.srv.Status()
	running := map[string]int{}
	for _, h := range st.Hosts {
		running[h.ID] = h.Running
	}
	for host, tasks := range r.received {
		if running[host] != len(tasks) {
			return fmt.Errorf("bench: %s received %d tasks, the scheduler has %d assigned to it", host, len(tasks), running[host])
		}
	}
	assigned := 0
	for _, b := range st.Batches {
		assigned += b.Tasks[wu.TaskAssigned]
	}
	if assigned != len(holder) {
		return fmt.Errorf("bench: volunteers received %d tasks, the scheduler has %d assigned", len(holder), assigned)
	}
	return nil
}
