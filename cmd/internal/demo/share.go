package demo

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/momonga-project/momonga/apps"
	"github.com/momonga-project/momonga/client/daemon"
	"github.com/momonga-project/momonga/client/idle"
	"github.com/momonga-project/momonga/client/prefs"
	"github.com/momonga-project/momonga/client/runner"
	"github.com/momonga-project/momonga/internal/scratch"
	"github.com/momonga-project/momonga/project/admin"
	"github.com/momonga-project/momonga/project/sched"
	"github.com/momonga-project/momonga/project/server"
	"github.com/momonga-project/momonga/project/signing"
	wu "github.com/momonga-project/momonga/workunits"
)

// Share is `momonga-project bench share`: the experiment of the study
// momonga grew from (a hybrid P2P system for idle resources, 2015), on
// real volunteers. Three volunteer clients on this machine, one fast and
// two slowed (their cpu_usage_limit lets tasks run a few per cent of the
// time), each need the inverses of matrices of order Step·n, n = 1..Count,
// the same matrices for all three (apps/matinv). The project runs twice,
// each time from scratch: "default", first come first served, each unit
// computed (submit --no-share); "proposed", capability-aware scheduling
// and shared results, so each matrix is inverted once, the heavy ones by
// the fast volunteer. The volunteers keep the client's default
// preferences otherwise, a work buffer among them.
//
// The study's figures: 30,162 ms for the baseline, 3,790 ms for the
// proposal, 7.96 times faster.

// ShareConfig is how Share runs.
type ShareConfig struct {
	Step  int // order of the smallest matrix; default 250
	Count int // matrices each volunteer needs, of order Step, 2·Step, ...; default 5
	// SlowLimit is the cpu_usage_limit of the two slowed volunteers, per
	// cent; default 5.
	SlowLimit float64
	DataDir   string // "" = a temporary directory, removed at the end
	Worker    runner.Worker
	Progress  func(ShareRun)
	Logger    *slog.Logger
}

// ShareRun is one run of the experiment.
type ShareRun struct {
	Mode    string  `json:"mode"` // "default" or "proposed"
	Seconds float64 `json:"seconds"`
	// Computed is how many matrices were inverted; ByVolunteer, which each
	// volunteer inverted (their orders, largest first); Busy, how long each
	// volunteer's tasks ran in all, from start to report.
	Computed    int                `json:"computed"`
	ByVolunteer map[string][]int   `json:"by_volunteer"`
	Busy        map[string]float64 `json:"busy_seconds"`
	Checksums   map[string]string  `json:"-"` // each unit's result
}

// ShareReport is what Share found.
type ShareReport struct {
	Step      int        `json:"step"`
	Count     int        `json:"count"`
	SlowLimit float64    `json:"slow_limit"`
	Runs      []ShareRun `json:"runs"`
	SpeedUp   float64    `json:"speed_up"`
}

// Study is what the study measured.
var Study = struct {
	BaselineMS, ProposalMS float64
}{30162, 3790}

// Volunteers of the experiment.
var shareVolunteers = []string{"fast", "slow-1", "slow-2"}

// Share runs the experiment, default then proposed.
func Share(ctx context.Context, cfg ShareConfig) (ShareReport, error) {
	if cfg.Step <= 0 {
		cfg.Step = 250
	}
	if cfg.Count <= 0 {
		cfg.Count = 5
	}
	if cfg.SlowLimit == 0 {
		cfg.SlowLimit = 5
	}
	if cfg.SlowLimit < 1 || cfg.SlowLimit > 100 {
		return ShareReport{}, fmt.Errorf("bench share: slowed volunteers' cpu_usage_limit %g: use 1 to 100", cfg.SlowLimit)
	}
	if cfg.Step*cfg.Count > 4000 {
		return ShareReport{}, fmt.Errorf("bench share: matrices up to order %d: matinv inverts up to 4000", cfg.Step*cfg.Count)
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	dir, remove, err := scratch.Dir(cfg.DataDir, "momonga-share-")
	if err != nil {
		return ShareReport{}, err
	}
	defer remove()
	cfg.DataDir = dir
	rep := ShareReport{Step: cfg.Step, Count: cfg.Count, SlowLimit: cfg.SlowLimit}
	for _, mode := range []string{"default", "proposed"} {
		run, err := shareRun(ctx, cfg, mode)
		if err != nil {
			return rep, fmt.Errorf("bench share: %s: %w", mode, err)
		}
		if cfg.Progress != nil {
			cfg.Progress(run)
		}
		rep.Runs = append(rep.Runs, run)
	}
	// Both runs inverted the same matrices: their results must agree.
	for name, sum := range rep.Runs[0].Checksums {
		if rep.Runs[1].Checksums[name] != sum {
			return rep, fmt.Errorf("bench share: unit %s: the two runs' results differ", name)
		}
	}
	rep.SpeedUp = rep.Runs[0].Seconds / rep.Runs[1].Seconds
	return rep, nil
}

// shareRun runs the experiment once, in a project and volunteers of its
// own.
func shareRun(ctx context.Context, cfg ShareConfig, mode string) (ShareRun, error) {
	run := ShareRun{Mode: mode, ByVolunteer: map[string][]int{}, Busy: map[string]float64{}, Checksums: map[string]string{}}
	dir := filepath.Join(cfg.DataDir, mode)
	projectDir := filepath.Join(dir, "project")
	pub, err := signing.Init(projectDir)
	if err != nil {
		return run, fmt.Errorf("signing key: %w", err)
	}
	policy := sched.PolicyCapability
	if mode == "default" {
		policy = sched.PolicyFCFS
	}
	scfg := server.Embedded(projectDir, "127.0.0.1:0")
	scfg.Sched = sched.Config{Project: "momonga share " + mode, Lease: 30 * time.Second, Beat: 5 * time.Second, Retry: time.Second, Policy: policy}
	scfg.Logger = cfg.Logger
	scfg.Trust = server.Trust{Open: true, SigningKey: pub}
	srv, err := server.Start(ctx, scfg)
	if err != nil {
		return run, fmt.Errorf("start project server: %w", err)
	}
	defer srv.Close()
	adm, err := admin.Dial(ctx, srv.ClientURL())
	if err != nil {
		return run, err
	}
	defer adm.Close()
	manifest, err := signing.Sign(filepath.Join(projectDir, signing.PrivateFile), apps.MatInv)
	if err != nil {
		return run, fmt.Errorf("sign matinv: %w", err)
	}
	app, err := adm.AddApp(ctx, "matinv", apps.MatInv, manifest, wu.Policy{Replication: 1, Quorum: 1})
	if err != nil {
		return run, fmt.Errorf("publish matinv: %w", err)
	}

	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	defer func() {
		cancel()
		wg.Wait()
	}()
	if err := warm(ctx, dir); err != nil {
		return run, err
	}
	var mu sync.Mutex
	tasks := map[string]string{} // task → volunteer that reported it
	started := map[string]time.Time{}
	bench := SharedBenchmark(dir)
	for _, name := range shareVolunteers {
		p := prefs.Defaults()
		// A person at the machine, other programs busy: the volunteers
		// compute all the same, as dedicated machines would.
		p.RunIfUserActive, p.RunOnBattery, p.SuspendCPUPercent = true, true, 0
		if name != "fast" {
			p.CPUUsageLimit = cfg.SlowLimit
		}
		d, err := daemon.New(daemon.Config{
			DataDir: filepath.Join(dir, name), Project: srv.ClientURL(), CPUs: 1, Name: name,
			Worker: cfg.Worker, Logger: cfg.Logger.With("volunteer", name), Prefs: &p,
			Monitor: idle.Unwatched(), Benchmark: bench, Control: "off",
			Events: func(e daemon.Event) {
				mu.Lock()
				defer mu.Unlock()
				switch e.Kind {
				case "started":
					started[e.Task] = time.Now()
				case "reported":
					if !e.Failed {
						tasks[e.Task] = name
						run.Busy[name] += time.Since(started[e.Task]).Seconds()
					}
				}
			},
		})
		if err != nil {
			return run, err
		}
		wg.Go(func() {
			if err := d.Run(ctx); err != nil {
				cfg.Logger.Error("volunteer stopped", "volunteer", name, "err", err)
			}
		})
	}
	// Every volunteer is registered, and has found no work, before the
	// work comes: none has a head start.
	if err := waitFor(ctx, func() bool { return len(srv.Status().Hosts) == len(shareVolunteers) }); err != nil {
		return run, err
	}

	sub := wu.Submit{Batch: "study", App: app.Name, Replication: 1, Quorum: 1, NoShare: mode == "default",
		Limits: wu.Limits{MemoryBytes: 256 << 20, OutputBytes: 1 << 10, MaxSeconds: 24 * 3600}}
	for peer := 1; peer <= len(shareVolunteers); peer++ {
		for n := 1; n <= cfg.Count; n++ {
			order := cfg.Step * n
			sub.Units = append(sub.Units, wu.UnitSpec{Name: fmt.Sprintf("peer%d-%d", peer, order),
				Args: []string{strconv.Itoa(order), strconv.Itoa(n)}, FPOps: 2 * float64(order) * float64(order) * float64(order)})
		}
	}
	begin := time.Now()
	if _, err := adm.Submit(ctx, sub); err != nil {
		return run, fmt.Errorf("submit: %w", err)
	}
	status, err := waitForBatch(ctx, adm, sub.Batch, func(wu.BatchStatus) {})
	if err != nil {
		return run, err
	}
	run.Seconds = time.Since(begin).Seconds()
	if status.Valid != len(sub.Units) {
		return run, fmt.Errorf("%d of %d units valid", status.Valid, len(sub.Units))
	}
	res, err := adm.Results(ctx, sub.Batch)
	if err != nil {
		return run, err
	}
	byID := map[string]wu.UnitResult{}
	for _, u := range res.Units {
		byID[u.ID] = u
		out, err := adm.Blob(ctx, u.Output)
		if err != nil {
			return run, err
		}
		run.Checksums[u.Name] = string(out)
		if u.SharedWith == "" {
			run.Computed++
		}
	}
	// The same matrix, needed by every peer, has the same inverse.
	for name, sum := range run.Checksums {
		_, order, _ := strings.Cut(name, "-")
		if first := run.Checksums["peer1-"+order]; sum != first {
			return run, fmt.Errorf("%s and peer1-%s inverted the same matrix to different results", name, order)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	for task, name := range tasks {
		unit, _, _ := strings.Cut(task, "_")
		order, err := strconv.Atoi(strings.Fields(run.Checksums[byID[unit].Name] + " 0")[0])
		if err != nil {
			return run, fmt.Errorf("result of %s: %w", task, err)
		}
		run.ByVolunteer[name] = append(run.ByVolunteer[name], order)
	}
	for _, orders := range run.ByVolunteer {
		slices.Sort(orders)
		slices.Reverse(orders)
	}
	return run, nil
}

// warm compiles matinv into each volunteer's compilation cache, as on a
// volunteer that ran the app before (the study's peers had the program
// installed): the slowed volunteers would otherwise spend most of the
// experiment compiling the module at a few per cent of the CPU.
func warm(ctx context.Context, dir string) error {
	scratch := filepath.Join(dir, "warm")
	if err := os.MkdirAll(filepath.Join(scratch, "root"), 0o700); err != nil {
		return err
	}
	module := filepath.Join(scratch, "matinv.wasm")
	if err := os.WriteFile(module, apps.MatInv, 0o600); err != nil {
		return err
	}
	for _, name := range shareVolunteers {
		res := runner.Run(ctx, runner.Spec{Module: module, Name: "matinv", Args: []string{"1", "1"}, Dir: filepath.Join(scratch, "root"),
			Output: filepath.Join(scratch, "out"), CacheDir: filepath.Join(dir, name, "cache")})
		if res.Failed {
			return fmt.Errorf("compile matinv for %s: %s", name, res.Reason)
		}
	}
	return os.RemoveAll(scratch)
}

// waitFor polls cond until it holds or ctx ends.
func waitFor(ctx context.Context, cond func() bool) error {
	t := time.NewTicker(50 * time.Millisecond)
	defer t.Stop()
	for !cond() {
		select {
		case <-ctx.Done():
			return errors.New("interrupted")
		case <-t.C:
		}
	}
	return nil
}
