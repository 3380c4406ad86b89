package hostbench

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/momonga-project/momonga/internal/scratch"
	"github.com/momonga-project/momonga/project/admin"
	"github.com/momonga-project/momonga/project/auth"
	wu "github.com/momonga-project/momonga/workunits"
)

// Server is a momonga-project binary to measure, with a label for the
// table (the design it was built with).
type Server struct {
	Label string
	Path  string
}

// Config says what Run measures.
type Config struct {
	Servers []Server
	// Hosts are the levels: hosts attached and connected, each level on a
	// new project.
	Hosts []int
	// Concurrency is how many hosts attach and connect at once.
	Concurrency int
	// Dir holds the projects' data directories and server logs; a
	// temporary directory when "".
	Dir string
	// Progress, when set, is told each row as it is measured.
	Progress func(Row)
	// Log, when set, is told how the storm goes, every few seconds.
	Log func(string)
	// ProfileDir, when set, receives the servers' profiles, named by
	// level and server (LEVEL-SERVER-): the heap (heap.pb.gz, go tool
	// pprof) and the goroutines (goroutines.txt) with every host
	// connected, and the goroutines 10 s into the storm
	// (storm-goroutines.txt) and a CPU profile of its first 30 s
	// (storm-cpu.pb.gz).
	ProfileDir string
	// Leaves, when not 0, puts that many leaf-node servers (serve
	// --leaf-of) on this machine in front of the core server, each with a
	// copy of its keys, and connects the hosts to them in turn, none to the
	// core. The storm is not measured then.
	Leaves int
}

// Row is one server binary at one level.
type Row struct {
	Server string `json:"server"`
	Hosts  int    `json:"hosts"`
	// Resident memory of the server process (VmRSS) when it serves with no
	// host, with every host attached (none connected), and with every host
	// connected and answered.
	BaseMB      float64 `json:"base_mb"`
	AttachedMB  float64 `json:"attached_mb"`
	ConnectedMB float64 `json:"connected_mb"`
	// Per host: what attaching costs (the project's state, the NATS
	// account where a host has one) and what connecting adds (connection,
	// subscriptions, the callout's record).
	AttachedKB  float64 `json:"attached_kb_per_host"`
	ConnectedKB float64 `json:"connected_kb_per_host"`
	// ConnectPerSecond: hosts connected through the callout and answered
	// their hello per second, Concurrency at once.
	ConnectPerSecond float64 `json:"connect_per_second"`
	// The storm: the server restarts and every host reconnects at once.
	// Storm is the time from the restarted server's start until every host
	// has been answered again (StormP50 until half of them); OthersWorst
	// the longest a request of the project's tools waited meanwhile.
	Storm       time.Duration `json:"storm"`
	StormP50    time.Duration `json:"storm_p50"`
	OthersWorst time.Duration `json:"others_worst"`
	// Goroutines is how many the server runs with every host connected
	// (counted with Config.ProfileDir only).
	Goroutines int `json:"goroutines,omitempty"`
	// AfterStormMB is the server's memory once every host is back.
	AfterStormMB float64 `json:"after_storm_mb"`
	// With leaf nodes (Config.Leaves): how many, their resident memory
	// with no host and with every host connected, all leaves together, and
	// what each connected host adds on its leaf.
	Leaves          int     `json:"leaves,omitempty"`
	LeafBaseMB      float64 `json:"leaf_base_mb,omitempty"`
	LeafConnectedMB float64 `json:"leaf_connected_mb,omitempty"`
	LeafKB          float64 `json:"leaf_kb_per_host,omitempty"`
	// Failed says why the level could not be completed, if it could not.
	Failed string `json:"failed,omitempty"`
}

// Run measures every server binary at every level, in turn.
func Run(ctx context.Context, cfg Config) ([]Row, error) {
	if cfg.Concurrency <= 0 {
		cfg.Concurrency = 64
	}
	dir, remove, err := scratch.Dir(cfg.Dir, "momonga-hostbench-")
	if err != nil {
		return nil, err
	}
	defer remove()
	var rows []Row
	for _, n := range cfg.Hosts {
		for i, s := range cfg.Servers {
			name := fmt.Sprintf("%d-%d", n, i)
			r, err := measure(ctx, cfg, s, n, filepath.Join(dir, name), name)
			if ctx.Err() != nil {
				return rows, ctx.Err()
			}
			if err != nil {
				// A design that cannot hold the level is a result too: the
				// row keeps what was measured before it gave way.
				r.Failed = err.Error()
			}
			if cfg.Progress != nil {
				cfg.Progress(r)
			}
			rows = append(rows, r)
		}
	}
	return rows, nil
}

func measure(ctx context.Context, cfg Config, s Server, n int, dir, name string) (Row, error) {
	row := Row{Server: s.Label, Hosts: n}
	data := filepath.Join(dir, "data")
	if out, err := exec.CommandContext(ctx, s.Path, "init", "--data", data).CombinedOutput(); err != nil {
		return row, fmt.Errorf("init: %v: %s", err, bytes.TrimSpace(out))
	}
	addr, err := freeAddr()
	if err != nil {
		return row, err
	}
	prof, err := newProfiler(cfg.ProfileDir, name)
	if err != nil {
		return row, err
	}
	args := prof.args()
	var leafAddr string
	if cfg.Leaves > 0 {
		if leafAddr, err = freeAddr(); err != nil {
			return row, err
		}
		args = append(args, "--leaf-listen", leafAddr)
	}
	srv, err := startServer(ctx, s.Path, data, addr, filepath.Join(dir, "server-1.log"), args...)
	if err != nil {
		return row, err
	}
	defer func() {
		if srv != nil {
			_ = srv.stop()
		}
	}()
	url := "nats://" + addr
	creds := nats.UserCredentials(filepath.Join(data, "admin.creds"))
	hostURLs := []string{url}
	var leaves []*server
	defer func() {
		for _, l := range leaves {
			_ = l.stop()
		}
	}()
	if cfg.Leaves > 0 {
		row.Leaves = cfg.Leaves
		if hostURLs, leaves, err = startLeaves(ctx, s.Path, dir, data, "nats://"+leafAddr, cfg.Leaves, creds); err != nil {
			return row, err
		}
		for _, l := range leaves {
			mb, err := SettledRSS(ctx, l.pid())
			if err != nil {
				return row, err
			}
			row.LeafBaseMB += mb
		}
	}
	adm, err := admin.Dial(ctx, url, creds, nats.MaxReconnects(-1), nats.ReconnectWait(50*time.Millisecond))
	if err != nil {
		return row, err
	}
	defer adm.Close()
	// Settled: what the server holds with no host.
	if row.BaseMB, err = SettledRSS(ctx, srv.pid()); err != nil {
		return row, err
	}
	_, key, err := adm.AddUser(ctx, "bench", "bench@example.org", "")
	if err != nil {
		return row, fmt.Errorf("add the hosts' user: %w", err)
	}
	raw, err := nats.Connect(url, creds, nats.MaxReconnects(-1))
	if err != nil {
		return row, err
	}
	defer raw.Close()
	hosts, err := Attach(ctx, raw, key, n, cfg.Concurrency)
	if err != nil {
		return row, err
	}
	if row.AttachedMB, err = SettledRSS(ctx, srv.pid()); err != nil {
		return row, err
	}
	fleet, took, err := Connect(ctx, hosts, FleetConfig{URLs: hostURLs, Concurrency: cfg.Concurrency})
	if err != nil {
		row.ConnectedMB, _ = RSS(srv.pid())
		row.AttachedKB = (row.AttachedMB - row.BaseMB) * 1024 / float64(n)
		return row, err
	}
	defer fleet.Close()
	row.ConnectPerSecond = float64(n) / took.Seconds()
	if row.ConnectedMB, err = SettledRSS(ctx, srv.pid()); err != nil {
		return row, err
	}
	row.AttachedKB = (row.AttachedMB - row.BaseMB) * 1024 / float64(n)
	row.ConnectedKB = (row.ConnectedMB - row.AttachedMB) * 1024 / float64(n)
	if row.Goroutines, err = prof.connected(); err != nil {
		return row, err
	}
	if len(leaves) > 0 {
		for _, l := range leaves {
			mb, err := SettledRSS(ctx, l.pid())
			if err != nil {
				return row, err
			}
			row.LeafConnectedMB += mb
		}
		row.LeafKB = (row.LeafConnectedMB - row.LeafBaseMB) * 1024 / float64(n)
		return row, nil
	}

	// The storm: the server stops and starts again on the same data and
	// address; every host's connection reconnects and says hello again.
	if err := srv.stop(); err != nil {
		return row, err
	}
	restart := time.Now()
	if srv, err = startServer(ctx, s.Path, data, addr, filepath.Join(dir, "server-2.log"), prof.args()...); err != nil {
		return row, err
	}
	others := watchOthers(ctx, adm, restart)
	go func() {
		if err := prof.stormCPU(); err != nil && cfg.Log != nil {
			cfg.Log(err.Error())
		}
	}()
	lastLog, dumped := restart, false
	for {
		if !dumped && time.Since(restart) >= 10*time.Second {
			dumped = true
			// In the background: a busy server may be slow to give it,
			// and the storm is measured meanwhile.
			go func() {
				if err := prof.storm(); err != nil && cfg.Log != nil {
					cfg.Log(err.Error())
				}
			}()
		}
		served, waiting := fleet.ServedSince(restart)
		if cfg.Log != nil && time.Since(lastLog) >= 5*time.Second {
			lastLog = time.Now()
			cfg.Log(fmt.Sprintf("storm +%.0fs: %d of %d hosts answered again; the tools' last answer +%.1fs",
				time.Since(restart).Seconds(), len(served), n, others.last().Seconds()))
		}
		if waiting == 0 {
			row.Storm, row.StormP50 = served[len(served)-1], served[len(served)/2]
			break
		}
		if ctx.Err() != nil {
			return row, fmt.Errorf("the storm: %d of %d hosts not answered again: %w", waiting, n, ctx.Err())
		}
		select {
		case <-ctx.Done():
		case <-time.After(100 * time.Millisecond):
		}
	}
	row.OthersWorst = others.stop()
	if row.AfterStormMB, err = SettledRSS(ctx, srv.pid()); err != nil {
		return row, err
	}
	return row, nil
}

// probeBatch names the batch the tools' requests ask for the results of:
// there is none, and the answer says so, as of the log's last record. (A
// status would list every host: at 10^4 hosts its reply is larger than a
// NATS message may be, and never comes.)
const probeBatch = "no-such-batch"

// startLeaves starts n leaf-node servers of the core whose data is in data
// and whose leaf-node port is at hub, each with a copy of its keys, and
// returns once each can ask the core who a key belongs to.
func startLeaves(ctx context.Context, bin, dir, data, hub string, n int, creds nats.Option) ([]string, []*server, error) {
	keys, err := os.ReadFile(filepath.Join(data, auth.KeysFile))
	if err != nil {
		return nil, nil, err
	}
	var urls []string
	var leaves []*server
	for i := range n {
		ldata := filepath.Join(dir, fmt.Sprintf("leaf-%d", i+1))
		if err := os.MkdirAll(ldata, 0o700); err != nil {
			return nil, leaves, err
		}
		if err := os.WriteFile(filepath.Join(ldata, auth.KeysFile), keys, 0o600); err != nil {
			return nil, leaves, err
		}
		addr, err := freeAddr()
		if err != nil {
			return nil, leaves, err
		}
		l, err := startServer(ctx, bin, ldata, addr, filepath.Join(dir, fmt.Sprintf("leaf-%d.log", i+1)), "--leaf-of", hub)
		if err != nil {
			return nil, leaves, err
		}
		leaves = append(leaves, l)
		urls = append(urls, "nats://"+addr)
	}
	for _, u := range urls {
		nc, err := nats.Connect(u, creds, nats.MaxReconnects(-1))
		if err != nil {
			return nil, leaves, fmt.Errorf("leaf node %s: %w", u, err)
		}
		deadline := time.Now().Add(time.Minute)
		for {
			if _, err = nc.Request(auth.SubjectDirectoryHost, []byte("nobody"), time.Second); err == nil {
				break
			}
			if time.Now().After(deadline) || ctx.Err() != nil {
				nc.Close()
				return nil, leaves, fmt.Errorf("leaf node %s does not reach the core's directory: %w", u, err)
			}
		}
		nc.Close()
	}
	return urls, leaves, nil
}

// watchOthers sends the project's tools' requests (a read of the state as
// of the log's last record, as `status` and `results` read it) one after
// the other from start until stop is called, which returns the longest any
// of them waited, counting from start for the first (the server is down
// then, for everyone), and up to the end for one still waiting.
func watchOthers(ctx context.Context, adm *admin.Client, start time.Time) *watcher {
	ctx, cancel := context.WithCancel(ctx)
	w := &watcher{cancel: cancel, done: make(chan time.Duration, 1), start: start}
	go func() {
		var worst time.Duration
		sent := start
		for ctx.Err() == nil {
			rctx, rcancel := context.WithTimeout(ctx, 2*time.Second)
			_, err := adm.Results(rctx, probeBatch)
			rcancel()
			if err == nil || wu.ErrorCode(err) == wu.CodeNotFound {
				worst = max(worst, time.Since(sent))
				sent = time.Now()
				w.mu.Lock()
				w.answered = sent
				w.mu.Unlock()
			}
			select {
			case <-ctx.Done():
			case <-time.After(50 * time.Millisecond):
			}
		}
		// A request still unanswered at the end has waited since sent:
		// when none was answered during the whole storm, that is the
		// figure, not zero.
		w.done <- max(worst, time.Since(sent))
	}()
	return w
}

type watcher struct {
	cancel   func()
	done     chan time.Duration
	start    time.Time
	mu       sync.Mutex
	answered time.Time
}

// last is when the tools' latest request was answered, since start (0:
// none yet).
func (w *watcher) last() time.Duration {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.answered.IsZero() {
		return 0
	}
	return w.answered.Sub(w.start)
}

func (w *watcher) stop() time.Duration { w.cancel(); return <-w.done }

// SettledRSS is the process's resident memory once it has stopped
// changing by more than a few percent over a second, in MB.
func SettledRSS(ctx context.Context, pid int) (float64, error) {
	prev := -1.0
	for range 30 {
		select {
		case <-ctx.Done():
			return 0, ctx.Err()
		case <-time.After(time.Second):
		}
		mb, err := RSS(pid)
		if err != nil {
			return 0, err
		}
		if prev > 0 && mb < prev*1.02 && mb > prev*0.98 {
			return mb, nil
		}
		prev = mb
	}
	return prev, nil
}

// RSS is the resident memory of process pid, in MB.
func RSS(pid int) (float64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, fmt.Errorf("memory of the server: %w", err)
	}
	for l := range strings.SplitSeq(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "VmRSS:"); ok {
			kb, err := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 64)
			return kb / 1024, err
		}
	}
	return 0, errors.New("memory of the server: no VmRSS in /proc/PID/status")
}

func freeAddr() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}

// server is a running `momonga-project serve`.
type server struct {
	cmd  *exec.Cmd
	done chan struct{}
}

var servingLine = regexp.MustCompile(`serving: NATS nats://`)

// startServer starts bin serving data at addr, with its log in logPath,
// and returns once it says it serves. Hosts may send as many requests as
// they like: the bench measures the servers, not the per-host limits.
func startServer(ctx context.Context, bin, data, addr, logPath string, args ...string) (*server, error) {
	logf, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(bin, append([]string{"serve", "--data", data, "--nats-listen", addr, "--http", "", "--host-rate", "1000", "--host-burst", "1000"}, args...)...)
	cmd.Stderr = logf
	out, err := cmd.StdoutPipe()
	if err != nil {
		logf.Close()
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		logf.Close()
		return nil, fmt.Errorf("start %s: %w", bin, err)
	}
	s := &server{cmd: cmd, done: make(chan struct{})}
	serving := make(chan struct{})
	go func() {
		sc := bufio.NewScanner(out)
		said := false
		for sc.Scan() {
			if !said && servingLine.MatchString(sc.Text()) {
				said = true
				close(serving)
			}
		}
		_ = cmd.Wait()
		logf.Close()
		close(s.done)
	}()
	select {
	case <-serving:
		return s, nil
	case <-s.done:
		return nil, fmt.Errorf("%s serve exited before serving; its log ends with:\n%s", bin, logTail(logPath))
	case <-ctx.Done():
		_ = s.stop()
		return nil, ctx.Err()
	case <-time.After(2 * time.Minute):
		_ = s.stop()
		return nil, fmt.Errorf("%s serve is not serving after 2 minutes; its log ends with:\n%s", bin, logTail(logPath))
	}
}

// logTail is the end of a server's log, for an error.
func logTail(path string) string {
	b, _ := os.ReadFile(path)
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	return strings.Join(lines[max(len(lines)-10, 0):], "\n")
}

func (s *server) pid() int { return s.cmd.Process.Pid }

// stop stops the server as its operator would (SIGTERM), and kills it if
// it has not exited within a minute.
func (s *server) stop() error {
	select {
	case <-s.done:
		return nil
	default:
	}
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.done:
		return nil
	case <-time.After(time.Minute):
		_ = s.cmd.Process.Kill()
		<-s.done
		return errors.New("the server did not stop within a minute of SIGTERM: killed")
	}
}
