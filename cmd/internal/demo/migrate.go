package demo

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/momonga-project/momonga/project/signing"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"time"

	"github.com/momonga-project/momonga/apps"
	"github.com/momonga-project/momonga/client/daemon"
	"github.com/momonga-project/momonga/client/runner"
	"github.com/momonga-project/momonga/internal/scratch"
	"github.com/momonga-project/momonga/project/admin"
	"github.com/momonga-project/momonga/project/sched"
	"github.com/momonga-project/momonga/project/server"
	wu "github.com/momonga-project/momonga/workunits"
)

// MigrateConfig is how the migrate scenario runs.
type MigrateConfig struct {
	DataDir string // "" = a temporary directory, removed at the end
	// Executable is the momonga-project binary whose hidden demo-volunteer
	// command runs each volunteer in its own process; default this one.
	Executable string
	Interval   time.Duration // checkpoint interval; default 3 s
	KillAt     float64       // progress at which a volunteer is killed; default 0.4
	Args       []string      // mandelr's arguments; default its deep tile
	Out        io.Writer
	Logger     *slog.Logger
}

// Leases and heartbeats of the migrate scenario: a departed host's task is
// given to another host about Lease after its last heartbeat (DESIGN §3).
const (
	migrateLease = 6 * time.Second
	migrateBeat  = 2 * time.Second
)

// RunMigrate is `momonga-project demo --scenario migrate`: the long reactor
// app (mandelr) as one task on three volunteers, each a separate process;
// the volunteer computing it is killed hard (SIGKILL, its worker too) in the
// middle, and the task resumes on another volunteer from its newest
// checkpoint. The result is checked against an undisturbed run of the same
// module, and the CPU time lost is measured: the killed run's CPU time at
// the kill less that of the checkpoint the task resumed from.
func RunMigrate(ctx context.Context, cfg MigrateConfig) error {
	if cfg.Interval <= 0 {
		cfg.Interval = 3 * time.Second
	}
	if cfg.KillAt <= 0 || cfg.KillAt >= 1 {
		cfg.KillAt = 0.4
	}
	if cfg.Out == nil {
		cfg.Out = os.Stdout
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Executable == "" {
		exe, err := os.Executable()
		if err != nil {
			return err
		}
		cfg.Executable = exe
	}
	dir, remove, err := scratch.Dir(cfg.DataDir, "momonga-migrate-")
	if err != nil {
		return err
	}
	defer remove()
	cfg.DataDir = dir
	start := time.Now()
	out := cfg.Out
	say := func(format string, args ...any) {
		fmt.Fprintf(out, "%5.1fs  %s\n", time.Since(start).Seconds(), fmt.Sprintf(format, args...))
	}

	// This scenario is about checkpoints, so its project is open (no
	// accounts); apps are signed all the same.
	projectDir := filepath.Join(cfg.DataDir, "project")
	pub, err := signing.Init(projectDir)
	if err != nil {
		return err
	}
	scfg := server.Embedded(projectDir, "127.0.0.1:0")
	scfg.Sched = sched.Config{Project: "momonga migrate demo", Lease: migrateLease, Beat: migrateBeat, Retry: time.Second}
	scfg.Logger = cfg.Logger
	scfg.Trust = server.Trust{Open: true, SigningKey: pub}
	srv, err := server.Start(ctx, scfg)
	if err != nil {
		return fmt.Errorf("start project server: %w", err)
	}
	defer srv.Close()
	say("project server on %s: lease %s, heartbeat %s, checkpoint every %s", srv.ClientURL(), migrateLease, migrateBeat, cfg.Interval)

	module, err := wu.PrepareModule(apps.MandelR)
	if err != nil {
		return err
	}
	// The undisturbed run, for comparison, in this process meanwhile.
	reference := make(chan referenceRun, 1)
	go func() { reference <- runReference(ctx, cfg.DataDir, module, cfg.Args) }()

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	events := make(chan volunteerEvent, 64)
	vols := make([]*volunteerProc, 3)
	var wg sync.WaitGroup
	defer func() {
		cancel()
		for _, v := range vols {
			if v != nil {
				v.stop()
			}
		}
		wg.Wait()
	}()

	for i := range vols {
		v, err := startVolunteer(ctx, cfg, i+1, srv.ClientURL(), events, &wg)
		if err != nil {
			return err
		}
		vols[i] = v
	}
	say("3 volunteers started, each a process with its own data directory")

	adm, err := admin.Dial(ctx, srv.ClientURL())
	if err != nil {
		return err
	}
	defer adm.Close()
	manifest, err := signing.Sign(filepath.Join(projectDir, signing.PrivateFile), module)
	if err != nil {
		return err
	}
	app, err := adm.AddApp(ctx, "mandelr", module, manifest, wu.Policy{Replication: 1, Quorum: 1})
	if err != nil {
		return fmt.Errorf("publish mandelr: %w", err)
	}
	sub := wu.Submit{Batch: "migrate", App: app.Name, Replication: 1, Quorum: 1, DeadlineSeconds: 3600,
		CheckpointSeconds: cfg.Interval.Seconds(), Limits: wu.Limits{MemoryBytes: 64 << 20, OutputBytes: 1 << 20, MaxSeconds: 1800},
		Units: []wu.UnitSpec{{Name: "tile", Args: cfg.Args}}}
	if _, err := adm.Submit(ctx, sub); err != nil {
		return fmt.Errorf("submit: %w", err)
	}
	say("published mandelr (a Go reactor; its 8 mutable globals exported at app add: %s) and one work unit", app.Hash.Short())

	var (
		holder             = -1
		victim             = -1
		pid                int
		last               daemon.Event
		killed             bool
		killTime           time.Time
		cpuAtKill          float64
		resumedOn          = -1
		resumed            daemon.Event
		checkpointsShipped int
		lastAt, resumedAt  time.Time
	)
	batchDone := make(chan error, 1)
	go func() {
		_, err := waitForBatch(ctx, adm, sub.Batch, func(wu.BatchStatus) {})
		batchDone <- err
	}()
	var pendingKill <-chan time.Time
	for done := false; !done; {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case err := <-batchDone:
			if err != nil {
				return err
			}
			done = true
		case <-pendingKill:
			pendingKill = nil
			v := vols[holder]
			if cpu, err := runner.ProcessCPUTime(pid); err == nil {
				cpuAtKill = cpu.Seconds()
			} else {
				cpuAtKill = last.CPUSeconds
			}
			v.kill(pid)
			killed, killTime, victim = true, time.Now(), holder
			say("volunteer-%d KILLED (SIGKILL to the client and its worker), %.1f s after its last checkpoint #%d at %.1f%%; the task had used %.2f s of CPU",
				holder+1, killTime.Sub(lastAt).Seconds(), last.Seq, 100*last.Progress, cpuAtKill)
		case e := <-events:
			ev := e.Event
			switch ev.Kind {
			case "started":
				if !killed || e.volunteer != holder {
					holder, pid = e.volunteer, ev.Pid
				}
				if !killed {
					say("volunteer-%d runs the task (worker pid %d)", e.volunteer+1, ev.Pid)
				}
			case "resumed":
				resumedOn, resumed, resumedAt = e.volunteer, ev, time.Now()
				say("volunteer-%d resumes the task from checkpoint #%d at %.1f%% (task CPU %.2f s), %.1f s after the kill",
					e.volunteer+1, ev.Seq, 100*ev.Progress, ev.CPUSeconds, time.Since(killTime).Seconds())
			case "checkpoint":
				checkpointsShipped++
				if e.volunteer == holder && !killed {
					last, lastAt = ev, time.Now()
				}
				say("volunteer-%d: checkpoint #%d shipped, progress %.1f%%, task CPU %.2f s", e.volunteer+1, ev.Seq, 100*ev.Progress, ev.CPUSeconds)
				// Kill in the middle of an interval, once the task is well
				// under way: up to an interval's work is then at stake.
				if !killed && pendingKill == nil && ev.Progress >= cfg.KillAt {
					pendingKill = time.After(cfg.Interval * 2 / 3)
				}
			case "finished", "reported":
				if ev.Failed {
					say("volunteer-%d: task %s %s, FAILED: %s", e.volunteer+1, ev.Task, ev.Kind, ev.Reason)
				} else {
					say("volunteer-%d: task %s %s", e.volunteer+1, ev.Task, ev.Kind)
				}
			}
		}
	}
	if !killed {
		return errors.New("the task ended before a volunteer could be killed: give it more work (a larger tile)")
	}
	if resumedOn < 0 {
		return errors.New("the task did not resume from a checkpoint")
	}
	res, err := adm.Results(ctx, sub.Batch)
	if err != nil {
		return err
	}
	if len(res.Units) != 1 || res.Units[0].State != wu.WorkUnitValid {
		return fmt.Errorf("work unit not valid: %+v", res.Units)
	}
	got := res.Units[0].Output
	ref := <-reference
	if ref.err != nil {
		return fmt.Errorf("undisturbed run: %w", ref.err)
	}
	lost := cpuAtKill - resumed.CPUSeconds
	say("result %s (%d bytes); undisturbed run %s", got.Short(), res.Units[0].OutputSize, ref.hash.Short())
	fmt.Fprintf(out, "\nmigrate: the task ran on volunteer-%d, which was killed %.1f s after its checkpoint #%d at %.1f%%, and resumed on volunteer-%d from that checkpoint %.1f s after the kill\n",
		victim+1, killTime.Sub(lastAt).Seconds(), last.Seq, 100*last.Progress, resumedOn+1, resumedAt.Sub(killTime).Seconds())
	fmt.Fprintf(out, "migrate: CPU time lost %.2f s (checkpoint interval %s); %d checkpoints shipped in all\n", lost, cfg.Interval, checkpointsShipped)
	if got != ref.hash {
		return fmt.Errorf("migrate: the result %s differs from the undisturbed run's %s", got.Short(), ref.hash.Short())
	}
	fmt.Fprintln(out, "migrate: result identical to the undisturbed run")
	if lost > cfg.Interval.Seconds() {
		return fmt.Errorf("migrate: %.2f s of CPU time lost, more than one checkpoint interval", lost)
	}
	return nil
}

type referenceRun struct {
	hash wu.Hash
	err  error
}

// runReference runs the module straight through, without checkpoints.
func runReference(ctx context.Context, dataDir string, module []byte, args []string) referenceRun {
	dir := filepath.Join(dataDir, "reference")
	if err := os.MkdirAll(filepath.Join(dir, "root"), 0o700); err != nil {
		return referenceRun{err: err}
	}
	path := filepath.Join(dir, "mandelr.wasm")
	if err := os.WriteFile(path, module, 0o600); err != nil {
		return referenceRun{err: err}
	}
	res := runner.Run(ctx, runner.Spec{Module: path, Name: "mandelr", Args: args, Dir: filepath.Join(dir, "root"),
		Output: filepath.Join(dir, "stdout"), Limits: wu.Limits{MemoryBytes: 64 << 20, OutputBytes: 1 << 20, MaxSeconds: 1800},
		Seed: "reference"})
	if res.Failed {
		return referenceRun{err: errors.New(res.Reason)}
	}
	b, err := os.ReadFile(filepath.Join(dir, "stdout"))
	return referenceRun{hash: wu.HashOf(b), err: err}
}

// volunteerProc is a volunteer client in its own process.
type volunteerProc struct {
	cmd *exec.Cmd
}

type volunteerEvent struct {
	volunteer int
	daemon.Event
}

// VolunteerCommandName is the hidden command of momonga-project that runs
// one volunteer of the migrate scenario and prints its events as JSON lines.
const VolunteerCommandName = "demo-volunteer"

func startVolunteer(ctx context.Context, cfg MigrateConfig, n int, url string, events chan<- volunteerEvent, wg *sync.WaitGroup) (*volunteerProc, error) {
	name := fmt.Sprintf("volunteer-%d", n)
	cmd := exec.Command(cfg.Executable, VolunteerCommandName, "--data", filepath.Join(cfg.DataDir, name), "--project", url, "--name", name,
		"--checkpoint", cfg.Interval.String())
	cmd.Stderr = os.Stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			var e daemon.Event
			if json.Unmarshal(sc.Bytes(), &e) != nil {
				continue
			}
			select {
			case events <- volunteerEvent{volunteer: n - 1, Event: e}:
			case <-ctx.Done():
				return
			}
		}
		_ = cmd.Wait()
	}()
	return &volunteerProc{cmd: cmd}, nil
}

// kill kills the volunteer and its worker at once, as a host that loses
// power would stop.
func (v *volunteerProc) kill(workerPid int) {
	_ = v.cmd.Process.Kill()
	if p, err := os.FindProcess(workerPid); err == nil && workerPid > 0 {
		_ = p.Kill()
	}
}

// stop ends a volunteer the way a user does (Ctrl-C), and kills it if it
// is still there after a while.
func (v *volunteerProc) stop() {
	if v.cmd.Process.Signal(os.Interrupt) != nil {
		_ = v.cmd.Process.Kill()
		return
	}
	time.AfterFunc(30*time.Second, func() { _ = v.cmd.Process.Kill() })
}
