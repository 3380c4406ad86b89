// Package demo is `momonga-project demo`: a project server on an embedded
// NATS, a few real volunteer clients on loopback, the primes app and a batch
// that counts the primes below 10^8, with live progress.
//
// It runs the project as a real one runs: NATS over TLS with a certificate
// authority made for the demo, a signing key for the app, and for each
// volunteer a user whose account key attaches it, so that every volunteer
// has credentials of its own and its replicas are checked against another
// user's.
package demo

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/vbauerster/mpb/v8"
	"github.com/vbauerster/mpb/v8/decor"

	"github.com/nats-io/nats.go"

	"github.com/momonga-project/momonga/apps"
	"github.com/momonga-project/momonga/client/daemon"
	"github.com/momonga-project/momonga/client/host"
	"github.com/momonga-project/momonga/client/idle"
	"github.com/momonga-project/momonga/client/prefs"
	"github.com/momonga-project/momonga/client/runner"
	"github.com/momonga-project/momonga/internal/scratch"
	"github.com/momonga-project/momonga/project/admin"
	"github.com/momonga-project/momonga/project/auth"
	"github.com/momonga-project/momonga/project/sched"
	"github.com/momonga-project/momonga/project/server"
	"github.com/momonga-project/momonga/project/signing"
	wu "github.com/momonga-project/momonga/workunits"
)

// Config is how the demo runs.
type Config struct {
	Members      int // members of the scheduler's virtual peer; default 1
	Volunteers   int
	DataDir      string // "" = a temporary directory, removed at the end
	ExitWhenDone bool
	HTTPListen   string
	Units        int    // work units in the batch
	Limit        uint64 // count the primes below this
	Worker       runner.Worker
	Out          io.Writer
	Logger       *slog.Logger
}

// PrimesBelow1e8 is π(10^8), what the default demo must print.
const PrimesBelow1e8 = 5761455

// Run runs the demo until the batch is validated (and, without
// ExitWhenDone, until ctx ends).
func Run(ctx context.Context, cfg Config) error {
	if cfg.Volunteers <= 0 {
		cfg.Volunteers = 3
	}
	if cfg.Units <= 0 {
		cfg.Units = 100
	}
	if cfg.Limit == 0 {
		cfg.Limit = 100_000_000
	}
	if cfg.Out == nil {
		cfg.Out = os.Stdout
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.HTTPListen == "" {
		cfg.HTTPListen = "127.0.0.1:0"
	}
	dir, remove, err := scratch.Dir(cfg.DataDir, "momonga-demo-")
	if err != nil {
		return err
	}
	defer remove()
	cfg.DataDir = dir
	start := time.Now()

	projectDir := filepath.Join(cfg.DataDir, "project")
	pub, err := signing.Init(projectDir)
	if err != nil {
		return fmt.Errorf("signing key: %w", err)
	}
	tls, err := auth.WriteDevTLS(filepath.Join(cfg.DataDir, "tls"), "127.0.0.1", "localhost")
	if err != nil {
		return fmt.Errorf("TLS certificate: %w", err)
	}
	scfg := server.Embedded(projectDir, "127.0.0.1:0")
	scfg.HTTPListen = cfg.HTTPListen
	scfg.StatsDir, scfg.ExportEvery = filepath.Join(projectDir, "stats"), time.Hour
	scfg.Members = max(cfg.Members, 1)
	scfg.Sched = sched.Config{Project: "momonga demo", Lease: 15 * time.Second, Beat: 5 * time.Second, Retry: time.Second}
	scfg.Logger = cfg.Logger
	scfg.Trust = server.Trust{SigningKey: pub, TLSCert: tls.Cert, TLSKey: tls.Key}
	srv, err := server.Start(ctx, scfg)
	if err != nil {
		return fmt.Errorf("start project server: %w", err)
	}
	defer srv.Close()
	fmt.Fprintf(cfg.Out, "project server: NATS %s (TLS, CA %s), stats %s\n", srv.ClientURL(), tls.CA, srv.StatsURL())

	adm, err := admin.Dial(ctx, srv.ClientURL(), nats.UserCredentials(srv.AdminCreds()), nats.RootCAs(tls.CA))
	if err != nil {
		return err
	}
	defer adm.Close()
	if _, err := adm.AddTeam(ctx, "demo", ""); err != nil {
		return fmt.Errorf("create team: %w", err)
	}

	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	defer func() {
		cancel()
		wg.Wait()
	}()
	p := mpb.NewWithContext(ctx, mpb.WithOutput(cfg.Out), mpb.WithWidth(40), mpb.WithRefreshRate(150*time.Millisecond))
	var volunteerBars []*mpb.Bar
	dedicated := VolunteerPrefs()
	bench := SharedBenchmark(cfg.DataDir)
	for i := range cfg.Volunteers {
		name := fmt.Sprintf("volunteer-%d", i+1)
		// Each volunteer's bar fills with its share of all the tasks.
		bar := p.New(int64(2*cfg.Units), mpb.BarStyle(), mpb.PrependDecorators(decor.Name(name, decor.WCSyncSpaceR)),
			mpb.AppendDecorators(decor.Any(func(s decor.Statistics) string { return fmt.Sprintf("%d tasks", s.Current) })))
		volunteerBars = append(volunteerBars, bar)
		// Each volunteer is a user of its own: two replicas of a unit never
		// go to one user.
		_, key, err := adm.AddUser(ctx, name, "", "demo")
		if err != nil {
			return fmt.Errorf("create user %s: %w", name, err)
		}
		dir := filepath.Join(cfg.DataDir, name)
		if _, err := daemon.Attach(ctx, daemon.AttachConfig{DataDir: dir, URL: srv.ClientURL(), AccountKey: key, Name: name, CAFile: tls.CA}); err != nil {
			return fmt.Errorf("attach %s: %w", name, err)
		}
		d, err := daemon.New(daemon.Config{
			DataDir:   dir,
			CPUs:      1,
			Name:      name,
			Worker:    cfg.Worker,
			Logger:    cfg.Logger.With("volunteer", name),
			Prefs:     &dedicated,
			Monitor:   idle.Unwatched(),
			Benchmark: bench,
			Control:   "off",
			Events: func(e daemon.Event) {
				if e.Kind == "reported" {
					bar.IncrInt64(1)
				}
			},
		})
		if err != nil {
			return err
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := d.Run(ctx); err != nil {
				cfg.Logger.Error("volunteer stopped", "volunteer", name, "err", err)
			}
		}()
	}

	manifest, err := signing.Sign(filepath.Join(projectDir, signing.PrivateFile), apps.Primes)
	if err != nil {
		return fmt.Errorf("sign primes app: %w", err)
	}
	app, err := adm.AddApp(ctx, "primes", apps.Primes, manifest, wu.Policy{Replication: 2, Quorum: 2})
	if err != nil {
		return fmt.Errorf("publish primes app: %w", err)
	}
	sub := wu.Submit{Batch: "primes-demo", App: app.Name, Replication: 2, Quorum: 2, DeadlineSeconds: 3600,
		Limits: wu.Limits{MemoryBytes: 64 << 20, OutputBytes: 1 << 10, MaxSeconds: 300}}
	step := cfg.Limit / uint64(cfg.Units)
	for i := range uint64(cfg.Units) {
		lo, hi := i*step, (i+1)*step
		if i == uint64(cfg.Units)-1 {
			hi = cfg.Limit
		}
		sub.Units = append(sub.Units, wu.UnitSpec{Args: []string{strconv.FormatUint(lo, 10), strconv.FormatUint(hi, 10)}})
	}
	if _, err := adm.Submit(ctx, sub); err != nil {
		return fmt.Errorf("submit batch: %w", err)
	}
	fmt.Fprintf(cfg.Out, "published app primes (%s) and batch %s: %d work units × replication 2, quorum 2\n",
		app.Hash.Short(), sub.Batch, cfg.Units)

	valid := p.New(int64(cfg.Units), mpb.BarStyle(), mpb.PrependDecorators(decor.Name("validated", decor.WCSyncSpaceR)),
		mpb.AppendDecorators(decor.CountersNoUnit("%d / %d"), decor.Name(" "), decor.Percentage()))
	status, err := waitForBatch(ctx, adm, sub.Batch, func(b wu.BatchStatus) { valid.SetCurrent(int64(b.Valid + b.Errored)) })
	for _, b := range volunteerBars {
		b.Abort(false)
	}
	valid.SetTotal(-1, true)
	p.Wait()
	if err != nil {
		return err
	}
	if status.Errored > 0 {
		return fmt.Errorf("%d work units ended in error", status.Errored)
	}

	total, err := sumResults(ctx, adm, sub.Batch)
	if err != nil {
		return err
	}
	fmt.Fprintf(cfg.Out, "primes below %d: %d\n", cfg.Limit, total)
	if st, err := adm.Status(ctx); err == nil {
		for _, t := range st.Teams {
			fmt.Fprintf(cfg.Out, "credit granted to team %s: %.2f Cobblestones (%d users)\n", t.Name, t.Credit, t.Members)
		}
	}
	fmt.Fprintf(cfg.Out, "done in %.1f s; stats page: %s\n", time.Since(start).Seconds(), srv.StatsURL())
	if cfg.Limit == 100_000_000 && total != PrimesBelow1e8 {
		return fmt.Errorf("the volunteers counted %d primes below 10^8, not %d", total, PrimesBelow1e8)
	}
	if cfg.ExitWhenDone {
		return nil
	}
	fmt.Fprintln(cfg.Out, "serving until Ctrl-C")
	<-ctx.Done()
	return nil
}

// waitForBatch polls the project until the batch is done.
func waitForBatch(ctx context.Context, adm *admin.Client, batch string, progress func(wu.BatchStatus)) (wu.BatchStatus, error) {
	t := time.NewTicker(200 * time.Millisecond)
	defer t.Stop()
	for {
		st, err := adm.Status(ctx)
		if err != nil {
			return wu.BatchStatus{}, err
		}
		for _, b := range st.Batches {
			if b.Name != batch {
				continue
			}
			progress(b)
			if b.Done() {
				return b, nil
			}
		}
		select {
		case <-ctx.Done():
			return wu.BatchStatus{}, ctx.Err()
		case <-t.C:
		}
	}
}

// sumResults adds up the counts in a batch's canonical results.
func sumResults(ctx context.Context, adm *admin.Client, batch string) (uint64, error) {
	res, err := adm.Results(ctx, batch)
	if err != nil {
		return 0, err
	}
	var total uint64
	for _, u := range res.Units {
		if u.State != wu.WorkUnitValid {
			return 0, fmt.Errorf("work unit %s is %s", u.Name, u.State)
		}
		out, err := adm.Blob(ctx, u.Output)
		if err != nil {
			return 0, err
		}
		n, err := strconv.ParseUint(strings.TrimSpace(string(out)), 10, 64)
		if err != nil {
			return 0, errors.New("work unit " + u.Name + ": result is not a count: " + strconv.Quote(string(out)))
		}
		total += n
	}
	return total, nil
}

// BenchTime is the time each benchmark kernel gets in the demo: figures
// good enough for credit and the stats page, in well under a second.
const BenchTime = 100 * time.Millisecond

// SharedBenchmark runs the volunteers' benchmarks once, briefly, in this
// process, and gives every volunteer that asks the same figures: the demo's
// volunteers share one machine. dir is where its free disk is measured.
func SharedBenchmark(dir string) func(context.Context) (host.Benchmarks, error) {
	var (
		mu  sync.Mutex
		b   host.Benchmarks
		ran bool
	)
	return func(ctx context.Context) (host.Benchmarks, error) {
		mu.Lock()
		defer mu.Unlock()
		if ran {
			return b, nil
		}
		got, err := host.RunBenchmarks(ctx, host.BenchConfig{Each: BenchTime}, host.Measure(dir))
		if err != nil {
			return got, err // tried again by the next volunteer that asks
		}
		b, ran = got, true
		return b, nil
	}
}

// VolunteerPrefs are the demo's volunteers' preferences: they compute
// whatever the person at the machine does, and each holds only the task it
// runs, so that all of them share the batch.
func VolunteerPrefs() prefs.Prefs {
	p := prefs.Defaults()
	p.RunIfUserActive, p.RunOnBattery, p.SuspendCPUPercent = true, true, 0
	p.WorkBufMinDays, p.WorkBufExtraDays = 0, 0
	return p
}
