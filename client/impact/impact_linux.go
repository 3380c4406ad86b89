package impact

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/momonga-project/momonga/apps"
	"github.com/momonga-project/momonga/client/control"
	"github.com/momonga-project/momonga/client/host"
	"github.com/momonga-project/momonga/client/prefs"
	"github.com/momonga-project/momonga/internal/procstat"
	"github.com/momonga-project/momonga/internal/xvfb"
	wu "github.com/momonga-project/momonga/workunits"
)

// Run starts a local project and the real client (`momonga run`), each in a
// process of its own, so that what is measured is the client alone: first
// idle (attached, nothing to do), then with tasks running when simulated
// input arrives.
func Run(ctx context.Context, cfg Config) (Result, error) {
	res := Result{GoalRSSBytes: goalRSS, GoalCPUPercent: goalCPU, GoalSuspendSecs: goalSuspend, Tasks: cfg.Tasks}
	projectBin, err := findProjectBinary(cfg.ProjectBinary)
	if err != nil {
		return res, err
	}
	tmp, err := os.MkdirTemp("", "momonga-impact-")
	if err != nil {
		return res, err
	}
	defer os.RemoveAll(tmp)
	var proj *projectProcess
	// The free port found for the project may be taken by someone else
	// before the project listens on it: then try another.
	for attempt := 0; ; attempt++ {
		if proj, err = startProject(ctx, projectBin, filepath.Join(tmp, "project")); err != nil {
			return res, err
		}
		if err = proj.publishPrimes(ctx, tmp); err == nil {
			break
		}
		proj.stop()
		if attempt == 2 {
			return res, err
		}
	}
	defer proj.stop()

	in, err := newInputSimulator(cfg.Input)
	if err != nil {
		return res, err
	}
	defer in.close()
	res.Input = in.kind

	data := filepath.Join(tmp, "client")
	if err := os.MkdirAll(data, 0o700); err != nil {
		return res, err
	}
	p := prefs.Defaults()
	p.IdleMinutes = 0.1     // 6 s, so the run is short
	p.SuspendCPUPercent = 0 // what is measured is the response to the person
	p.WorkBufMinDays = 0    // one task per slot
	p.WorkBufExtraDays = 0
	if err := prefs.Save(data, p); err != nil {
		return res, err
	}

	// The client runs from its own copy of the executable: pages it shares
	// with this process would otherwise stay resident on this process's
	// account, which a volunteer's client, alone on its machine, does not
	// have.
	exe, err := copyExecutable(tmp)
	if err != nil {
		return res, err
	}

	// Nothing attached, as a package starts the client.
	if err := measureUnattached(ctx, cfg, &res, exe, tmp, proj, in.env); err != nil {
		return res, fmt.Errorf("the client with nothing attached: %w", err)
	}

	// Idle: attached, registered, nothing to do.
	started := time.Now()
	child, err := startClient(ctx, exe, data, proj.url, in.env)
	if err != nil {
		return res, err
	}
	cl, err := waitRegistered(ctx, data, child)
	if err != nil {
		child.stop()
		return res, err
	}
	res.DaemonStartupSec = time.Since(started).Seconds()
	if err := sleep(ctx, settle); err != nil {
		child.stop()
		return res, err
	}
	cpu0, at0 := processCPU(child.pid()), time.Now()
	if err := sleep(ctx, cfg.Idle); err != nil {
		child.stop()
		return res, err
	}
	cpu1, at1 := processCPU(child.pid()), time.Now()
	res.IdleRSSBytes, _ = host.ResidentBytes(child.pid())
	res.IdleSeconds = at1.Sub(at0).Seconds()
	res.IdleCPUPercent = 100 * (cpu1 - cpu0).Seconds() / res.IdleSeconds
	child.stop()

	// Busy: tasks running, then the person comes back. The client starts
	// again so that it asks for the new work at once.
	sub := wu.Submit{Batch: "impact", App: "primes", Replication: 1, Quorum: 1, Limits: wu.Limits{MemoryBytes: 64 << 20}}
	for i := range cfg.Tasks {
		lo := uint64(1e12) + uint64(i)*uint64(1e11)
		sub.Units = append(sub.Units, wu.UnitSpec{Args: []string{strconv.FormatUint(lo, 10), strconv.FormatUint(lo+uint64(1e11), 10)}})
	}
	if err := proj.submit(ctx, tmp, sub); err != nil {
		return res, err
	}
	child, err = startClient(ctx, exe, data, proj.url, in.env)
	if err != nil {
		return res, err
	}
	defer child.stop()
	if cl, err = waitRegistered(ctx, data, child); err != nil {
		return res, err
	}
	pids, err := waitRunning(ctx, cl, cfg.Tasks)
	if err != nil {
		return res, err
	}
	if err := in.waitIdle(ctx, time.Duration(p.IdleMinutes*float64(time.Minute))); err != nil {
		return res, err
	}
	if !procstat.NoneStopped(pids) {
		return res, errors.New("tasks were not running before the simulated input")
	}
	input, err := in.input()
	if err != nil {
		return res, err
	}
	deadline := input.Add(30 * time.Second)
	for !procstat.AllStopped(pids) {
		if time.Now().After(deadline) {
			return res, errors.New("the tasks were not stopped within 30 s of input")
		}
		time.Sleep(time.Millisecond)
	}
	res.SuspendSeconds = time.Since(input).Seconds()
	return res, nil
}

// projectProcess is `momonga-project serve` on loopback. It runs in a
// process of its own so that the client's binary need not contain a NATS
// server, whose package start-up alone would wake the client every second;
// it is set up with momonga-project's own commands, so that the client's
// binary need not contain the project's tools either.
type projectProcess struct {
	*clientProcess
	bin string
	url string
	dir string // its data directory, with the key that signs its apps
}

func findProjectBinary(given string) (string, error) {
	if given != "" {
		return given, nil
	}
	if self, err := os.Executable(); err == nil {
		beside := filepath.Join(filepath.Dir(self), "momonga-project")
		if _, err := os.Stat(beside); err == nil {
			return beside, nil
		}
	}
	if p, err := exec.LookPath("momonga-project"); err == nil {
		return p, nil
	}
	return "", errors.New("bench impact runs a local project with momonga-project, found neither beside momonga nor on PATH: build both with `go build -o bin/ ./cmd/...` or give --project-binary")
}

func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

func startProject(ctx context.Context, bin, dir string) (*projectProcess, error) {
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	addr := "127.0.0.1:" + strconv.Itoa(port)
	if _, err := tool(ctx, bin, "init", "--data", dir); err != nil {
		return nil, err
	}
	c, err := startProcess(bin, os.Environ(), "serve", "--data", dir, "--nats-listen", addr, "--http", "", "--name", "impact", "--open")
	if err != nil {
		return nil, fmt.Errorf("start the project: %w", err)
	}
	return &projectProcess{clientProcess: c, bin: bin, url: "nats://" + addr, dir: dir}, nil
}

// tool runs one of momonga-project's commands to its end.
func tool(ctx context.Context, bin string, args ...string) ([]byte, error) {
	out, err := exec.CommandContext(ctx, bin, args...).CombinedOutput()
	if err != nil {
		return out, fmt.Errorf("momonga-project %s: %w: %s", args[0], err, bytes.TrimSpace(out))
	}
	return out, nil
}

// publishPrimes signs and publishes the primes app once the project
// answers; tmp is where the module is written for the command.
func (p *projectProcess) publishPrimes(ctx context.Context, tmp string) error {
	module := filepath.Join(tmp, "primes.wasm")
	if err := os.WriteFile(module, apps.Primes, 0o600); err != nil {
		return err
	}
	deadline := time.Now().Add(time.Minute)
	for {
		if err := p.exited(); err != nil {
			return err
		}
		// init wrote the project's signing key as signing.key.
		actx, cancel := context.WithTimeout(ctx, 10*time.Second)
		_, err := tool(actx, p.bin, "app", "add", "primes", module, "--server", p.url,
			"--key", filepath.Join(p.dir, "signing.key"), "--replication", "1", "--quorum", "1")
		cancel()
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("the project did not start: %w", err)
		}
		if err := sleep(ctx, 100*time.Millisecond); err != nil {
			return err
		}
	}
}

// submit submits a batch through a spec file written in tmp.
func (p *projectProcess) submit(ctx context.Context, tmp string, s wu.Submit) error {
	spec := filepath.Join(tmp, "batch.json")
	if err := os.WriteFile(spec, wu.Encode(s), 0o600); err != nil {
		return err
	}
	_, err := tool(ctx, p.bin, "submit", "--server", p.url, "--spec", spec)
	return err
}

type clientProcess struct {
	cmd  *exec.Cmd
	logs *bytes.Buffer
	done chan struct{}
}

// settle is how long the client gets after registering to finish its
// start-up work (its first work requests, giving back start-up memory)
// before it is measured idle.
const settle = 15 * time.Second

func copyExecutable(dir string) (string, error) {
	self, err := os.Executable()
	if err != nil {
		return "", err
	}
	src, err := os.Open(self)
	if err != nil {
		return "", err
	}
	defer src.Close()
	path := filepath.Join(dir, "momonga")
	dst, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o700)
	if err != nil {
		return "", err
	}
	if _, err := io.Copy(dst, src); err != nil {
		dst.Close()
		return "", err
	}
	return path, dst.Close()
}

func startClient(ctx context.Context, exe, data, project string, env []string) (*clientProcess, error) {
	c, err := startProcess(exe, env, "run", "--data", data, "--project", project)
	if err != nil {
		return nil, fmt.Errorf("start the client: %w", err)
	}
	return c, nil
}

func startProcess(bin string, env []string, args ...string) (*clientProcess, error) {
	cmd := exec.Command(bin, args...)
	cmd.Env = env
	logs := &bytes.Buffer{}
	cmd.Stdout, cmd.Stderr = logs, logs
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	c := &clientProcess{cmd: cmd, logs: logs, done: make(chan struct{})}
	go func() {
		_ = cmd.Wait()
		close(c.done)
	}()
	return c, nil
}

func (c *clientProcess) pid() int { return c.cmd.Process.Pid }

func (c *clientProcess) stop() {
	_ = c.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-c.done:
	case <-time.After(10 * time.Second):
		_ = c.cmd.Process.Kill()
		<-c.done
	}
}

func (c *clientProcess) exited() error {
	select {
	case <-c.done:
		return fmt.Errorf("%s exited: %s", filepath.Base(c.cmd.Path), strings.TrimSpace(c.logs.String()))
	default:
		return nil
	}
}

// waitRegistered waits until the client serves its control API and is
// registered with the project (after its first benchmarks).
func waitRegistered(ctx context.Context, data string, c *clientProcess) (*control.Client, error) {
	deadline := time.Now().Add(2 * time.Minute)
	for time.Now().Before(deadline) {
		if err := c.exited(); err != nil {
			return nil, err
		}
		if cl, err := control.Dial(data); err == nil {
			if ps, err := cl.Projects(ctx); err == nil && len(ps) == 1 && ps[0].Connected {
				return cl, nil
			}
		}
		if err := sleep(ctx, 50*time.Millisecond); err != nil {
			return nil, err
		}
	}
	return nil, errors.New("the client did not register within 2 minutes")
}

func waitRunning(ctx context.Context, cl *control.Client, n int) ([]int, error) {
	deadline := time.Now().Add(2 * time.Minute)
	for time.Now().Before(deadline) {
		ts, err := cl.Tasks(ctx)
		if err == nil {
			var pids []int
			for _, t := range ts {
				if t.State == "running" && t.PID != 0 {
					pids = append(pids, t.PID)
				}
			}
			if len(pids) == n && procstat.NoneStopped(pids) {
				return pids, nil
			}
		}
		if err := sleep(ctx, 20*time.Millisecond); err != nil {
			return nil, err
		}
	}
	st, _ := cl.Status(ctx)
	ts, _ := cl.Tasks(ctx)
	return nil, fmt.Errorf("%d tasks were not running within 2 minutes (client: %+v; tasks: %+v)", n, st, ts)
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// inputSimulator is the person: a pointer move on an Xvfb display the
// client watches, or a key typed on a pseudo-terminal (the client reads
// terminals' access times).
type inputSimulator struct {
	kind     string
	env      []string
	display  *xvfb.Display
	master   *os.File
	slave    *os.File
	lastUsed time.Time
}

func newInputSimulator(kind string) (*inputSimulator, error) {
	var env []string
	for _, e := range os.Environ() {
		// The client must see only the simulated person.
		if !strings.HasPrefix(e, "DISPLAY=") && !strings.HasPrefix(e, "WAYLAND_DISPLAY=") {
			env = append(env, e)
		}
	}
	if kind == "auto" {
		kind = "tty"
		if xvfb.Available() {
			kind = "x11"
		}
	}
	s := &inputSimulator{kind: kind, env: env, lastUsed: time.Now()}
	switch kind {
	case "x11":
		d, err := xvfb.Start()
		if err != nil {
			return nil, err
		}
		s.display = d
		s.env = append(s.env, "DISPLAY="+d.Name)
	case "tty":
		m, sl, err := openPTY()
		if err != nil {
			return nil, fmt.Errorf("pseudo-terminal: %w", err)
		}
		s.master, s.slave = m, sl
	default:
		return nil, fmt.Errorf("--input %q: use x11, tty or auto", kind)
	}
	return s, nil
}

// waitIdle waits until the simulated person has been away for the idle
// time, and for a terminal 8 s more: the kernel moves a terminal's access
// time in steps of 8 s, so a key in the same step would go unseen.
func (s *inputSimulator) waitIdle(ctx context.Context, idle time.Duration) error {
	wait := idle + time.Second
	if s.kind == "tty" {
		wait = max(wait, 9*time.Second)
	}
	return sleep(ctx, time.Until(s.lastUsed.Add(wait)))
}

// input makes the person act and returns when: for X11 as the server dated
// the pointer move (xdotool's own start-up is not the client's), for a
// terminal when the key was read.
func (s *inputSimulator) input() (time.Time, error) {
	s.lastUsed = time.Now()
	if s.display != nil {
		if err := s.display.Move(50, 60); err != nil {
			return time.Time{}, err
		}
		return s.display.LastInput()
	}
	if _, err := s.master.Write([]byte("x\n")); err != nil {
		return time.Time{}, err
	}
	buf := make([]byte, 16)
	_, err := s.slave.Read(buf)
	return time.Now(), err
}

func (s *inputSimulator) close() {
	if s.display != nil {
		s.display.Close()
	}
	if s.master != nil {
		s.master.Close()
		s.slave.Close()
	}
}

func openPTY() (master, slave *os.File, err error) {
	master, err = os.OpenFile("/dev/ptmx", os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		return nil, nil, err
	}
	fd := int(master.Fd())
	if err := unix.IoctlSetPointerInt(fd, unix.TIOCSPTLCK, 0); err != nil {
		master.Close()
		return nil, nil, err
	}
	n, err := unix.IoctlGetInt(fd, unix.TIOCGPTN)
	if err != nil {
		master.Close()
		return nil, nil, err
	}
	slave, err = os.OpenFile("/dev/pts/"+strconv.Itoa(n), os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		master.Close()
		return nil, nil, err
	}
	return master, slave, nil
}

// processCPU is a process's CPU time from the scheduler's per-thread
// nanosecond counters (/proc/<pid>/task/*/schedstat), finer than the 10 ms
// ticks of /proc/<pid>/stat.
func processCPU(pid int) time.Duration {
	paths, _ := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/schedstat", pid))
	var total time.Duration
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil {
			continue
		}
		f := strings.Fields(string(b))
		if len(f) > 0 {
			if ns, err := strconv.ParseInt(f[0], 10, 64); err == nil {
				total += time.Duration(ns)
			}
		}
	}
	return total
}
