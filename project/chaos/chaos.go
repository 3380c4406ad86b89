// Package chaos runs the scheduler's virtual peer (DESIGN §5) under fault,
// for `momonga-project vpeer chaos`: a project server on an embedded NATS
// whose members all run in child processes, simulated volunteers sending a
// steady stream of real requests through the gateway, and member processes
// killed with SIGKILL after exponentially distributed lifetimes and
// replaced after a delay. It reports what the volunteers got (requests
// served, errors by kind, windows with nothing served), how many members
// served over time, whether the members' state hashes agree at the end and
// whether every request took effect exactly once, beside what the
// reliability model (vpeer/reliability) predicts for the same parameters.
//
// The kill schedule is a pure function of the seed (Lifetime, Plan): a
// process is killed a Lifetime after it was started, and its position gets
// a new process the replacement delay later. The new process joins the
// group with room for one member; it takes the dead member's slot once the
// slot lapses, restores the newest snapshot and replays the log, through
// the same machinery as `serve --join`.
package chaos

import (
	"cmp"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"time"

	"github.com/momonga-project/momonga/apps"
	"github.com/momonga-project/momonga/internal/scratch"
	"github.com/momonga-project/momonga/project/admin"
	"github.com/momonga-project/momonga/project/sched"
	"github.com/momonga-project/momonga/project/server"
	"github.com/momonga-project/momonga/vpeer/reliability"
	wu "github.com/momonga-project/momonga/workunits"
)

// Config is a chaos run.
type Config struct {
	Members  int           // members of the virtual peer, one process each
	HalfLife time.Duration // half of the member processes are killed within this
	Replace  time.Duration // from a kill until the replacement process starts
	Duration time.Duration // how long volunteers send requests and members are killed
	Seed     uint64        // the kill schedule's seed

	Rate       float64       // volunteer requests per second, all volunteers together
	Volunteers int           // simulated volunteer hosts, each on its own connection
	Timeout    time.Duration // a request unanswered this long is an error
	// Gap is the shortest time with no request served that counts as an
	// unavailability window.
	Gap time.Duration

	// Heartbeat and Lapse time the membership (vpeer.GroupConfig): a
	// killed member's slot is free for its replacement Lapse after its
	// last renewal, as the replacement sees it.
	Heartbeat, Lapse time.Duration
	Tick             time.Duration // how often the lease holder appends a tick
	SnapshotEvery    uint64        // log records between snapshots

	// MemberCommand returns the command that runs one member process:
	// MemberMain with args, its standard input and output connected to
	// the run (`momonga-project vpeer chaos-member ARGS...`).
	MemberCommand func(args []string) *exec.Cmd
	// DataDir keeps the project's data and each member process's log
	// (members/P-G.log); "" uses a temporary directory, removed at the end.
	DataDir string
	// Progress, when set, is told what the run is doing, a line at a time.
	Progress func(format string, args ...any)
	Logger   *slog.Logger
}

// Defaults for what Config leaves zero.
const (
	DefaultRate          = 200
	DefaultVolunteers    = 100
	DefaultTimeout       = 2 * time.Second
	DefaultGap           = time.Second
	DefaultHeartbeat     = 250 * time.Millisecond
	DefaultLapse         = time.Second
	DefaultTick          = time.Second
	DefaultSnapshotEvery = 2000
)

// settle bounds each step of the end of a run: replacements arriving,
// volunteers' unanswered requests retried, members agreeing.
const settle = 90 * time.Second

func (cfg *Config) setDefaults() error {
	cfg.Rate = cmp.Or(cfg.Rate, DefaultRate)
	cfg.Volunteers = cmp.Or(cfg.Volunteers, DefaultVolunteers)
	cfg.Timeout = cmp.Or(cfg.Timeout, DefaultTimeout)
	cfg.Gap = cmp.Or(cfg.Gap, DefaultGap)
	cfg.Heartbeat = cmp.Or(cfg.Heartbeat, DefaultHeartbeat)
	cfg.Lapse = cmp.Or(cfg.Lapse, DefaultLapse)
	cfg.Tick = cmp.Or(cfg.Tick, DefaultTick)
	cfg.SnapshotEvery = cmp.Or(cfg.SnapshotEvery, DefaultSnapshotEvery)
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Progress == nil {
		cfg.Progress = func(string, ...any) {}
	}
	return cfg.Validate()
}

// Validate reports the first setting a run cannot use, naming its flag.
func (cfg Config) Validate() error {
	switch {
	case cfg.Members < 1 || cfg.Members > 15:
		return fmt.Errorf("--members must be between 1 and 15 (one process each), got %d", cfg.Members)
	case cfg.HalfLife <= 0:
		return fmt.Errorf("--half-life must be positive, got %s", cfg.HalfLife)
	case cfg.Replace < 0:
		return fmt.Errorf("--replace must not be negative, got %s", cfg.Replace)
	case cfg.Duration <= 0:
		return fmt.Errorf("--duration must be positive, got %s", cfg.Duration)
	case !(cfg.Rate > 0) || cfg.Rate > 5000:
		return fmt.Errorf("--rate must be above 0 and at most 5000 requests per second, got %g", cfg.Rate)
	case cfg.Volunteers < 1 || cfg.Volunteers > 1000:
		return fmt.Errorf("--volunteers must be between 1 and 1000, got %d", cfg.Volunteers)
	case cfg.Timeout <= 0:
		return fmt.Errorf("--timeout must be positive, got %s", cfg.Timeout)
	case cfg.Gap <= 0:
		return fmt.Errorf("--gap must be positive, got %s", cfg.Gap)
	case cfg.Heartbeat <= 0 || cfg.Lapse <= cfg.Heartbeat:
		return fmt.Errorf("--lapse (%s) must be longer than --heartbeat (%s), both positive", cfg.Lapse, cfg.Heartbeat)
	case cfg.Tick <= 0:
		return fmt.Errorf("--tick must be positive, got %s", cfg.Tick)
	case cfg.MemberCommand == nil:
		return errors.New("chaos: no command to start member processes with")
	}
	return nil
}

// Run does the chaos run cfg describes and reports it. It fails only when
// the run cannot be made (the server or the first members do not start);
// what goes wrong during the run is in the report.
func Run(ctx context.Context, cfg Config) (Report, error) {
	if err := cfg.setDefaults(); err != nil {
		return Report{}, err
	}
	dir, remove, err := scratch.Dir(cfg.DataDir, "momonga-chaos-")
	if err != nil {
		return Report{}, fmt.Errorf("chaos: %w", err)
	}
	defer remove()
	if err := os.MkdirAll(filepath.Join(dir, "members"), 0o700); err != nil {
		return Report{}, fmt.Errorf("chaos: %w", err)
	}
	pub, key, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return Report{}, err
	}
	scfg := server.Embedded(filepath.Join(dir, "project"), "127.0.0.1:0")
	// Leases outlast the run: a task given to a second host is then always
	// a fault, never a lease that ran out.
	scfg.Sched = sched.Config{Project: "momonga chaos", Lease: 24 * time.Hour, Beat: time.Hour, Retry: 100 * time.Millisecond}
	// Every member runs in a child process that joins.
	scfg.Members, scfg.GroupSize = 0, cfg.Members
	scfg.Logger = cfg.Logger.With("part", "server")
	scfg.Trust = server.Trust{Open: true, SigningKey: pub}
	srv, err := server.Start(ctx, scfg)
	if err != nil {
		return Report{}, fmt.Errorf("chaos: start the project server: %w", err)
	}
	defer srv.Close()

	r := newRun(cfg, srv.ClientURL(), dir)
	defer r.stopAll()
	cfg.Progress("project server at %s; starting %d member processes", srv.ClientURL(), cfg.Members)
	if err := r.startMembers(ctx); err != nil {
		return Report{}, err
	}
	wctx, cancel := context.WithTimeout(ctx, settle)
	err = srv.WaitForMembers(wctx)
	cancel()
	if err != nil {
		return Report{}, fmt.Errorf("chaos: %w", err)
	}
	load, err := prepareLoad(ctx, cfg, srv.ClientURL(), key)
	if err != nil {
		return Report{}, err
	}
	defer load.close()

	cfg.Progress("running for %s: %g requests/s from %d volunteers; members killed with half-life %s, replaced after %s (seed %d)",
		cfg.Duration, cfg.Rate, cfg.Volunteers, cfg.HalfLife, cfg.Replace, cfg.Seed)
	r.begin(time.Now())
	runCtx, stopRun := context.WithCancel(ctx)
	controlled := make(chan struct{})
	go func() {
		defer close(controlled)
		r.control(runCtx)
	}()
	load.run(ctx, r.t0, cfg.Duration)
	sleep(ctx, time.Until(r.t0.Add(cfg.Duration+50*time.Millisecond))) // the last kills are done
	rep := r.report(load)
	cfg.Progress("run over: %d requests, %d served, %d kills; settling", rep.Requests, rep.Served, rep.PlannedKills)

	rep.End = r.settle(ctx, load, srv)
	stopRun()
	<-controlled
	rep.Events = r.eventsCopy()
	rep.finish(r)
	return rep, nil
}

// prepareLoad publishes the app, queues enough work units for the run and
// says hello for every volunteer.
func prepareLoad(ctx context.Context, cfg Config, url string, key ed25519.PrivateKey) (*load, error) {
	adm, err := admin.Dial(ctx, url)
	if err != nil {
		return nil, fmt.Errorf("chaos: %w", err)
	}
	defer adm.Close()
	if _, err := adm.AddApp(ctx, "primes", apps.Primes, wu.SignApp(key, apps.Primes).Encode(), wu.Policy{}); err != nil {
		return nil, fmt.Errorf("chaos: publish the app: %w", err)
	}
	if _, err := adm.PutBlob(ctx, output); err != nil {
		return nil, fmt.Errorf("chaos: store the volunteers' output: %w", err)
	}
	// Every other request asks for work: one unit each, and some to spare.
	units := int(cfg.Rate*cfg.Duration.Seconds()*0.6) + cfg.Volunteers
	for queued := 0; queued < units; {
		s := wu.Submit{Batch: fmt.Sprintf("chaos-%03d", queued/wu.MaxUnitsPerSubmit), App: "primes", Replication: 1, Quorum: 1, DeadlineSeconds: 7 * 24 * 3600}
		for i := queued; i < min(units, queued+wu.MaxUnitsPerSubmit); i++ {
			s.Units = append(s.Units, wu.UnitSpec{Args: []string{fmt.Sprint(i * 1000), fmt.Sprint((i + 1) * 1000)}})
		}
		ids, err := adm.Submit(ctx, s)
		if err != nil {
			return nil, fmt.Errorf("chaos: queue work units: %w", err)
		}
		queued += len(ids)
	}
	cfg.Progress("%d work units queued", units)
	l, err := newLoad(ctx, cfg, url)
	if err != nil {
		return nil, err
	}
	l.units = units
	return l, nil
}

// model fills in what the reliability model says for the run's
// parameters, with τ as given.
func model(members int, halfLife, tau, duration time.Duration) (majority, none float64, err error) {
	m := reliability.Model{Members: members, HalfLife: halfLife, Replace: tau}
	r, err := m.Survival(duration)
	if err != nil {
		return 0, 0, err
	}
	m.Need = 1
	r1, err := m.Survival(duration)
	if err != nil {
		return 0, 0, err
	}
	return 1 - r, 1 - r1, nil
}
