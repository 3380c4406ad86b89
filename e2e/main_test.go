//go:build linux

package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/momonga-project/momonga/e2e/netlab"
	"github.com/momonga-project/momonga/internal/procstat"
	"github.com/momonga-project/momonga/internal/wait"
	wu "github.com/momonga-project/momonga/workunits"
)

const module = "github.com/momonga-project/momonga"

// The binaries TestMain builds, by absolute path.
var (
	clientBin  string // momonga, the volunteer client
	projectBin string // momonga-project
	mandelBin  string // apps/mandel built for this machine: it draws the expected images
	binDir     string // where they are
)

// The committed sample apps, as the tests publish them.
var (
	primesWasm  = filepath.Join("..", "apps", "primes.wasm")
	mandelWasm  = filepath.Join("..", "apps", "mandel.wasm")
	mandelrWasm = filepath.Join("..", "apps", "mandelr.wasm")
)

func TestMain(m *testing.M) {
	flag.Parse()
	if testing.Short() {
		os.Exit(m.Run()) // every test skips itself
	}
	os.Exit(buildAndRun(m))
}

func buildAndRun(m *testing.M) int {
	dir, err := os.MkdirTemp("", "momonga-e2e-")
	if err == nil {
		// Workers are recognised by the path of their binary (ownWorkers),
		// which /proc gives with every symbolic link resolved.
		dir, err = filepath.EvalSymlinks(dir)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		return 1
	}
	defer os.RemoveAll(dir)
	// `go test` puts its own toolchain first in PATH. The binaries are built
	// without -race whatever the tests run with: the race detector is for
	// the test process, and would make the volunteers several times slower.
	cmd := exec.Command("go", "build", "-o", dir+string(os.PathSeparator),
		module+"/cmd/momonga", module+"/cmd/momonga-project", module+"/apps/mandel", module+"/e2e/netlab/linkproxy")
	if out, err := cmd.CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "e2e: build the binaries: %v\n%s", err, out)
		return 1
	}
	binDir = dir
	netlab.LinkProxyBinary = filepath.Join(dir, "linkproxy")
	clientBin = filepath.Join(dir, "momonga")
	projectBin = filepath.Join(dir, "momonga-project")
	mandelBin = filepath.Join(dir, "mandel")
	for _, p := range []*string{&primesWasm, &mandelWasm, &mandelrWasm} {
		if *p, err = filepath.Abs(*p); err != nil {
			fmt.Fprintln(os.Stderr, "e2e:", err)
			return 1
		}
	}
	return m.Run()
}

// leaseBugBinary builds, once, momonga-project with the lease bug vpeer
// plants for the tests that must catch it (-tags momonga_leasebug).
func leaseBugBinary(t *testing.T) string {
	t.Helper()
	leaseBug.Do(func() {
		bin := filepath.Join(binDir, "momonga-project-leasebug")
		out, err := exec.Command("go", "build", "-tags", "momonga_leasebug", "-o", bin, module+"/cmd/momonga-project").CombinedOutput()
		if err != nil {
			leaseBug.err = fmt.Errorf("build momonga-project with the planted lease bug: %v\n%s", err, out)
			return
		}
		leaseBug.bin = bin
	})
	if leaseBug.err != nil {
		t.Fatal(leaseBug.err)
	}
	return leaseBug.bin
}

var leaseBug struct {
	sync.Once
	bin string
	err error
}

// Scheduler timing for every server: a task whose host stops beating goes to
// another host after a few seconds, not after the default half minute.
const (
	lease = 3 * time.Second
	beat  = time.Second
)

// pollEvery is how often conditions on a running project are checked.
const pollEvery = 200 * time.Millisecond

// project is a momonga-project server started by a test.
type project struct {
	t       *testing.T
	dir     string // the test's directory: data directories and logs
	dataDir string
	url     string
	server  *proc
	starts  int      // times the server was started
	extra   []string // more flags of serve, after the ones every test gives
	// in runs the project's tools and clients somewhere else, as
	// netlab.Node.Command does; nil runs them here.
	in func(argv ...string) []string
}

// command is argv as the project's tools and clients run it.
func (p *project) command(argv ...string) []string {
	if p.in == nil {
		return argv
	}
	return p.in(argv...)
}

// newProject starts `momonga-project serve` on a free loopback port with no
// stats page. Everything the test starts is stopped when it ends, and the
// test fails if a worker process outlives its client.
func newProject(t *testing.T) *project { return newProjectWith(t) }

// newProjectWith is newProject with more flags of serve, which override
// the common ones.
func newProjectWith(t *testing.T, extra ...string) *project {
	t.Helper()
	if testing.Short() {
		t.Skip("end-to-end test, skipped in -short mode (testing.Short): it runs real servers and clients for seconds")
	}
	p := &project{t: t, dir: t.TempDir(), extra: extra}
	p.dataDir = filepath.Join(p.dir, "project")
	// Registered after TempDir's removal and before any process's stop, so
	// it runs once every process has stopped and before the files go.
	t.Cleanup(func() { checkNoWorkers(t) })
	// As a project is set up for real: a signing key first, then a server
	// that admits only attached hosts.
	if out, err := exec.Command(projectBin, "init", "--data", p.dataDir).CombinedOutput(); err != nil {
		t.Fatalf("momonga-project init: %v\n%s", err, out)
	}
	p.startServer("127.0.0.1:0")
	return p
}

var servingLine = regexp.MustCompile(`serving: NATS (nats://[^\s,]+)`)

// startServer starts the server on p's data directory, listening on listen,
// and waits until it says it is serving.
func (p *project) startServer(listen string) {
	p.t.Helper()
	p.starts++
	argv := append([]string{projectBin, "--verbose", "serve",
		"--data", p.dataDir, "--nats-listen", listen, "--http", "", "--lease", lease.String(), "--beat", beat.String()}, p.extra...)
	p.server = start(p.t, p.dir, fmt.Sprintf("server-%d", p.starts), argv...)
	m := p.server.waitLine(servingLine, 60*time.Second)
	if p.url != "" && m[1] != p.url {
		p.t.Fatalf("restarted server serves at %s, not %s", m[1], p.url)
	}
	p.url = m[1]
}

// restartServer kills the server with SIGKILL, as a crash or the OOM killer
// would, keeps it down for the given time (an outage, not a wait for some
// condition) and starts it again on the same data directory and port.
func (p *project) restartServer(down time.Duration) {
	p.t.Helper()
	p.server.kill()
	u, err := url.Parse(p.url)
	if err != nil {
		p.t.Fatal(err)
	}
	select {
	case <-p.t.Context().Done():
		p.t.Fatal("test ended during the outage")
	case <-time.After(down):
	}
	p.startServer(u.Host)
}

var accountKeyLine = regexp.MustCompile(`account key: (\S+)`)

// startClient makes a user called name, attaches a host to it with
// `momonga attach` and starts `momonga run` there with one task slot. Each
// client is a user of its own, as the project never gives two replicas of a
// work unit to one user.
func (p *project) startClient(name string) *proc {
	p.t.Helper()
	return p.startClientIn(name, p.command, p.url)
}

// startClientIn is startClient with the client run by in (on a lab's host:
// netlab.Node.Command) and connecting to url.
func (p *project) startClientIn(name string, in func(argv ...string) []string, url string) *proc {
	p.t.Helper()
	dataDir := filepath.Join(p.dir, name)
	if err := os.Mkdir(dataDir, 0o700); err != nil {
		p.t.Fatal(err)
	}
	m := accountKeyLine.FindStringSubmatch(p.mustCLI("user add", name))
	if m == nil {
		p.t.Fatalf("user add %s printed no account key", name)
	}
	keyFile := filepath.Join(p.dir, name+".key")
	if err := os.WriteFile(keyFile, []byte(m[1]+"\n"), 0o600); err != nil {
		p.t.Fatal(err)
	}
	attach := in(clientBin, "attach", url, "--account-key-file", keyFile, "--data", dataDir, "--name", name)
	if out, err := exec.Command(attach[0], attach[1:]...).CombinedOutput(); err != nil {
		p.t.Fatalf("momonga attach: %v\n%s", err, out)
	}
	// A dedicated machine: it computes whatever the person and the other
	// processes (the project, the other clients) do, and holds only the
	// task it runs, so that the clients share a batch.
	for _, kv := range [][2]string{{"run_if_user_active", "true"}, {"run_on_battery", "true"}, {"suspend_cpu_percent", "0"},
		{"work_buf_min_days", "0"}, {"work_buf_extra_days", "0"}} {
		if out, err := exec.Command(clientBin, "prefs", "set", "--data", dataDir, kv[0], kv[1]).CombinedOutput(); err != nil {
			p.t.Fatalf("momonga prefs set %s: %v\n%s", kv[0], err, out)
		}
	}
	return start(p.t, dataDir, name, in(clientBin, "--verbose", "run",
		"--data", dataDir, "--project", url, "--cpus", "1", "--name", name)...)
}

// cli runs `momonga-project COMMAND --server URL ARGS...`, COMMAND being
// one or more words ("app add"), with the project's credentials, and returns
// its stdout and stderr.
func (p *project) cli(command string, args ...string) (stdout, stderr string, err error) {
	argv := p.command(append(append([]string{projectBin}, strings.Fields(command)...), append([]string{"--server", p.url}, args...)...)...)
	ctx, cancel := context.WithTimeout(p.t.Context(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.Dir = p.dir
	// The project's credentials, and the key that signs its apps, as the
	// scientist who runs the project would set them.
	cmd.Env = append(os.Environ(), "MOMONGA_SIGNING_KEY="+filepath.Join(p.dataDir, "signing.key"))
	if creds := filepath.Join(p.dataDir, "admin.creds"); fileExists(creds) {
		cmd.Env = append(cmd.Env, "MOMONGA_CREDS="+creds) // none on an open server
	}
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err = cmd.Run()
	return out.String(), errOut.String(), err
}

// mustCLI is cli for a command that must succeed.
func (p *project) mustCLI(command string, args ...string) string {
	p.t.Helper()
	out, errOut, err := p.cli(command, args...)
	if err != nil {
		p.t.Fatalf("momonga-project %s %s: %v\nstdout: %s\nstderr: %s", command, strings.Join(args, " "), err, out, errOut)
	}
	return out
}

// status reads `momonga-project status --json`.
func (p *project) status() (wu.StatusReply, error) {
	var st wu.StatusReply
	out, errOut, err := p.cli("status", "--json")
	if err != nil {
		return st, fmt.Errorf("status: %v: %s", err, strings.TrimSpace(errOut))
	}
	if err := json.Unmarshal([]byte(out), &st); err != nil {
		return st, fmt.Errorf("status: %v in %q", err, out)
	}
	return st, nil
}

// waitStatus polls the project's status until cond holds and returns that
// status. A status that cannot be read (the server is restarting) is polled
// again; the test fails when timeout passes first.
func (p *project) waitStatus(timeout time.Duration, what string, cond func(wu.StatusReply) bool) wu.StatusReply {
	p.t.Helper()
	var st wu.StatusReply
	var err error
	if wait.Until(timeout, pollEvery, func() bool { st, err = p.status(); return err == nil && cond(st) }) {
		return st
	}
	if err != nil {
		p.t.Fatalf("waited %v for %s; last status: %v", timeout, what, err)
	}
	b, _ := json.MarshalIndent(st, "", "  ")
	p.t.Fatalf("waited %v for %s; last status:\n%s", timeout, what, b)
	return st
}

// waitBatchDone polls until every work unit of the batch is valid or in
// error, and returns the status that shows it.
func (p *project) waitBatchDone(batch string, timeout time.Duration) wu.StatusReply {
	p.t.Helper()
	return p.waitStatus(timeout, "batch "+batch+" to be done", func(st wu.StatusReply) bool {
		b, ok := batchStatus(st, batch)
		return ok && b.Done()
	})
}

// results runs `momonga-project results BATCH --out DIR` and returns the
// directory and its manifest.
func (p *project) results(batch string) (string, wu.ResultsReply) {
	p.t.Helper()
	dir := filepath.Join(p.dir, "results-"+batch)
	p.mustCLI("results", "--out", dir, batch)
	var manifest wu.ResultsReply
	b, err := os.ReadFile(filepath.Join(dir, "manifest.json"))
	if err == nil {
		err = json.Unmarshal(b, &manifest)
	}
	if err != nil {
		p.t.Fatalf("manifest of batch %s: %v", batch, err)
	}
	return dir, manifest
}

// writeSpec writes a batch spec for `submit --spec` and returns its path.
func (p *project) writeSpec(spec batchSpec) string {
	p.t.Helper()
	b, err := json.MarshalIndent(spec, "", "  ")
	if err != nil {
		p.t.Fatal(err)
	}
	path := filepath.Join(p.dir, spec.Batch+".json")
	if err := os.WriteFile(path, b, 0o644); err != nil {
		p.t.Fatal(err)
	}
	return path
}

// batchSpec is the JSON `momonga-project submit --spec` reads.
type batchSpec struct {
	App         string     `json:"app"`
	Batch       string     `json:"batch"`
	Replication int        `json:"replication"`
	Quorum      int        `json:"quorum"`
	Units       []unitSpec `json:"units"`
	// CheckpointSeconds asks hosts to checkpoint this often.
	CheckpointSeconds float64 `json:"checkpoint_seconds,omitempty"`
}

type unitSpec struct {
	Name      string   `json:"name"`
	Args      []string `json:"args,omitempty"`
	StdinFile string   `json:"stdin_file,omitempty"`
}

func batchStatus(st wu.StatusReply, name string) (wu.BatchStatus, bool) {
	for _, b := range st.Batches {
		if b.Name == name {
			return b, true
		}
	}
	return wu.BatchStatus{}, false
}

func hostStatus(st wu.StatusReply, name string) (wu.HostStatus, bool) {
	for _, h := range st.Hosts {
		if h.Info.Name == name {
			return h, true
		}
	}
	return wu.HostStatus{}, false
}

// proc is a process a test started. When the test ends it gets SIGTERM, then
// SIGKILL if it has not exited ten seconds later; it must exit 0, and if the
// test failed, the end of its output is logged.
type proc struct {
	t     *testing.T
	name  string
	cmd   *exec.Cmd
	log   string      // file holding its stdout and stderr
	lines chan string // its stdout, line by line
	done  chan struct{}
	err   error // how it exited, once done is closed

	killed bool // by kill, not at the test's end
}

func start(t *testing.T, dir, name string, argv ...string) *proc {
	t.Helper()
	p := &proc{t: t, name: name, log: filepath.Join(dir, name+".log"), lines: make(chan string, 16), done: make(chan struct{})}
	logFile, err := os.OpenFile(p.log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.CommandContext(t.Context(), argv[0], argv[1:]...)
	cmd.Dir = dir
	cmd.Stdout = io.MultiWriter(logFile, &lineWriter{lines: p.lines})
	cmd.Stderr = logFile
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) }
	// Longer than a client's stop grace (20 s, daemon.Config.StopGrace): a
	// volunteer stopped with a task running checkpoints it and tries to ship
	// the checkpoint, to a project that may be stopping at the same moment.
	cmd.WaitDelay = 30 * time.Second
	p.cmd = cmd
	if err := cmd.Start(); err != nil {
		logFile.Close()
		t.Fatalf("start %s: %v", name, err)
	}
	go func() {
		p.err = cmd.Wait()
		logFile.Close()
		close(p.done)
	}()
	t.Cleanup(func() {
		<-p.done
		// Stopped by the test's end, it must have exited 0 on SIGTERM, which
		// Wait reports as the context's error.
		if !p.killed && p.err != nil && !errors.Is(p.err, context.Canceled) {
			t.Errorf("%s did not stop cleanly on SIGTERM: %v", name, p.err)
		}
		if t.Failed() {
			t.Logf("%s (%s) exited: %v; its output ends with:\n%s", name, strings.Join(argv, " "), p.err, tail(p.log, 4<<10))
		}
	})
	return p
}

// kill sends SIGKILL and waits until the process has exited.
func (p *proc) kill() {
	p.t.Helper()
	p.killed = true
	if err := p.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		p.t.Fatalf("kill %s: %v", p.name, err)
	}
	select {
	case <-p.done:
	case <-time.After(10 * time.Second):
		p.t.Fatalf("%s still running 10 s after SIGKILL", p.name)
	}
}

// waitLine waits until the process prints a line matching re on stdout and
// returns the match.
func (p *proc) waitLine(re *regexp.Regexp, timeout time.Duration) []string {
	p.t.Helper()
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	for {
		select {
		case l := <-p.lines:
			if m := re.FindStringSubmatch(l); m != nil {
				return m
			}
		case <-p.done:
			p.t.Fatalf("%s exited (%v) before printing a line matching %q:\n%s", p.name, p.err, re, tail(p.log, 4<<10))
		case <-timer.C:
			p.t.Fatalf("%s printed no line matching %q in %v", p.name, re, timeout)
		}
	}
}

// lineWriter hands complete lines to a channel, dropping them when nobody
// reads: only the first lines of a server are ever waited for.
type lineWriter struct {
	mu      sync.Mutex
	partial []byte
	lines   chan<- string
}

func (w *lineWriter) Write(b []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.partial = append(w.partial, b...)
	for {
		i := bytes.IndexByte(w.partial, '\n')
		if i < 0 {
			return len(b), nil
		}
		select {
		case w.lines <- string(w.partial[:i]):
		default:
		}
		w.partial = w.partial[i+1:]
	}
}

// tail returns the last n bytes of a file.
func tail(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return err.Error()
	}
	if len(b) > n {
		b = b[len(b)-n:]
	}
	return string(b)
}

// ownWorkers lists the worker processes of this run's momonga binary that are
// alive (not zombies): the processes a daemon re-executes itself as to run a
// task. They live in process groups of their own, so stopping a daemon's
// process does not stop them; they must end by themselves. With parent > 0,
// only that process's workers are listed.
func ownWorkers(parent int) []int {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil // not Linux: nothing to check
	}
	var pids []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		dir := filepath.Join("/proc", e.Name())
		if exe, err := os.Readlink(filepath.Join(dir, "exe")); err != nil || exe != clientBin {
			continue // gone, a zombie, or not ours
		}
		cmdline, err := os.ReadFile(filepath.Join(dir, "cmdline"))
		if args := strings.Split(string(cmdline), "\x00"); err != nil || len(args) < 2 || args[1] != "worker" {
			continue
		}
		if parent > 0 && parentOf(pid) != parent {
			continue
		}
		pids = append(pids, pid)
	}
	return pids
}

// parentOf reads a process's parent id from /proc, 0 if it is gone.
func parentOf(pid int) int {
	st, err := procstat.Read("/proc", pid)
	if err != nil {
		return 0
	}
	return st.PPID
}

// alive reports whether a process exists and is not a zombie.
func alive(pid int) bool {
	st, err := procstat.Read("/proc", pid)
	return err == nil && st.State != 'Z'
}

// checkNoWorkers fails the test if a worker process is still running once
// every client has stopped, and kills it.
func checkNoWorkers(t *testing.T) { checkNoWorkersWhere(t, nil) }

// checkNoWorkersIn is checkNoWorkers for the workers on lab's hosts only:
// the tests of labs run in parallel, each with its own.
func checkNoWorkersIn(t *testing.T, lab *netlab.Lab) { checkNoWorkersWhere(t, lab.Holds) }

func checkNoWorkersWhere(t *testing.T, where func(pid int) bool) {
	var left []int
	if wait.Until(15*time.Second, pollEvery, func() bool {
		left = slices.DeleteFunc(ownWorkers(0), func(pid int) bool { return where != nil && !where(pid) })
		return len(left) == 0
	}) {
		return
	}
	t.Errorf("worker processes %v still run 15 s after their clients stopped", left)
	for _, pid := range left {
		_ = syscall.Kill(pid, syscall.SIGKILL)
	}
}

// primesBatch is a batch of the primes app with the given name: units work
// units named u00, u01, … counting the primes in successive ranges of
// width, each computed by quorum hosts; and the count each must return.
func primesBatch(name string, units, width, quorum int) (batchSpec, map[string]int) {
	sieve := newPrimeSieve(units * width)
	spec := batchSpec{App: "primes", Batch: name, Replication: quorum, Quorum: quorum}
	want := map[string]int{}
	for i := range units {
		a, b := i*width, (i+1)*width
		unit := fmt.Sprintf("u%02d", i)
		spec.Units = append(spec.Units, unitSpec{Name: unit, Args: []string{strconv.Itoa(a), strconv.Itoa(b)}})
		want[unit] = sieve.count(a, b)
	}
	return spec, want
}

// primeSieve tells composites from primes below its length.
type primeSieve []bool // true: composite

func newPrimeSieve(n int) primeSieve {
	s := make(primeSieve, n)
	for i := 0; i < min(n, 2); i++ {
		s[i] = true
	}
	for i := 2; i*i < n; i++ {
		if !s[i] {
			for j := i * i; j < n; j += i {
				s[j] = true
			}
		}
	}
	return s
}

// count is the number of primes p with a <= p < b.
func (s primeSieve) count(a, b int) int {
	n := 0
	for i := a; i < b; i++ {
		if !s[i] {
			n++
		}
	}
	return n
}

func fileExists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}
