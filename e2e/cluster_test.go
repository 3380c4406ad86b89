//go:build linux

package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/momonga-project/momonga/internal/wait"
	"github.com/momonga-project/momonga/vpeer"
	wu "github.com/momonga-project/momonga/workunits"
)

// clusterServer is one `momonga-project serve` of a cluster.
type clusterServer struct {
	index   int
	dataDir string
	name    string // its NATS server name, as JetStream reports leaders
	url     string // for volunteers and tools
	proc    *proc
}

// newCluster sets a secured project up on three servers as the README says:
// `init` once, the keys and the public signing key copied to the other data
// directories, then three `serve --cluster-name` routed to each other on
// loopback, started together. p's tools use the first server.
func newCluster(t *testing.T, n int) (*project, []*clusterServer) {
	t.Helper()
	if testing.Short() {
		t.Skip("end-to-end test, skipped in -short mode (testing.Short): it runs real servers and clients for seconds")
	}
	p := &project{t: t, dir: t.TempDir()}
	t.Cleanup(func() { checkNoWorkers(t) })
	servers := make([]*clusterServer, n)
	var routes []string
	for i, port := range freePorts(t, n) {
		servers[i] = &clusterServer{index: i, dataDir: filepath.Join(p.dir, fmt.Sprintf("server-%d", i+1))}
		routes = append(routes, fmt.Sprintf("nats://127.0.0.1:%d", port))
	}
	p.dataDir = servers[0].dataDir
	if out, err := exec.Command(projectBin, "init", "--data", p.dataDir).CombinedOutput(); err != nil {
		t.Fatalf("momonga-project init: %v\n%s", err, out)
	}
	for _, s := range servers[1:] {
		if err := os.Mkdir(s.dataDir, 0o700); err != nil {
			t.Fatal(err)
		}
		for _, f := range []string{"nats-keys.json", "signing.pub"} {
			b, err := os.ReadFile(filepath.Join(p.dataDir, f))
			if err == nil {
				err = os.WriteFile(filepath.Join(s.dataDir, f), b, 0o600)
			}
			if err != nil {
				t.Fatal(err)
			}
		}
	}
	for i, s := range servers {
		s.proc = start(t, p.dir, fmt.Sprintf("server-%d", i+1), projectBin, "--verbose", "serve",
			"--data", s.dataDir, "--nats-listen", "127.0.0.1:0", "--http", "", "--lease", lease.String(), "--beat", beat.String(),
			"--cluster-name", "momonga-e2e", "--cluster-listen", strings.TrimPrefix(routes[i], "nats://"), "--routes", strings.Join(routes, ","))
	}
	for _, s := range servers {
		s.url = s.proc.waitLine(servingLine, 90*time.Second)[1]
		b, err := os.ReadFile(filepath.Join(s.dataDir, "server-name"))
		if err != nil {
			t.Fatalf("server %d keeps no name: %v", s.index+1, err)
		}
		s.name = strings.TrimSpace(string(b))
	}
	p.url = servers[0].url
	return p, servers
}

// freePorts finds n free loopback ports for the routes.
func freePorts(t *testing.T, n int) []int {
	t.Helper()
	var ports []int
	for range n {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer ln.Close()
		ports = append(ports, ln.Addr().(*net.TCPAddr).Port)
	}
	return ports
}

// TestClusterSurvivesTheLogLeadersDeath runs a batch on a project served by
// a cluster of three processes, each with its own data directory, embedded
// NATS server, scheduler member and gateway; each volunteer is given all
// three servers' URLs, a different one first. During the batch the process whose NATS server leads the
// scheduler log's stream (R3) is killed with SIGKILL. The batch completes,
// every work unit valid, with exactly quorum results credited for each.
//
// The write pause is measured by a probe that appends to the scheduler's
// log itself, through a surviving server: a record every 20 ms (an
// operation the scheduler refuses without changing anything), each waiting
// for JetStream's acknowledgement. The pause is the longest time between
// two successive acknowledged appends after the kill: how long the log
// accepted nothing, including the time to notice the leader is gone and
// elect another.
func TestClusterSurvivesTheLogLeadersDeath(t *testing.T) {
	p, servers := newCluster(t, 3)
	// Each volunteer is given every server's URL, its own server's first.
	for i := range servers {
		var urls []string
		for j := range servers {
			urls = append(urls, servers[(i+j)%len(servers)].url)
		}
		p.url = strings.Join(urls, ",")
		p.startClient(fmt.Sprintf("vol%d", i+1))
	}
	p.url = servers[0].url
	p.waitStatus(30*time.Second, "three volunteers to register", func(st wu.StatusReply) bool { return len(st.Hosts) == 3 })
	p.mustCLI("app add", "primes", primesWasm)

	const units, width, quorum = 60, 100_000, 2
	spec, want := primesBatch("primes-cluster", units, width, quorum)
	p.mustCLI("submit", "--spec", p.writeSpec(spec))
	before := p.waitStatus(60*time.Second, "a quarter of the batch to be valid", func(st wu.StatusReply) bool {
		b, _ := batchStatus(st, spec.Batch)
		return b.Valid >= units/4
	})

	nc := connect(t, servers[0].url, p.dataDir)
	leader := logLeader(t, nc, servers)
	nc.Close()
	// The probe and the tools use a server that stays up.
	survivor := servers[(leader.index+1)%len(servers)]
	p.url = survivor.url
	nc = connect(t, survivor.url, p.dataDir)
	defer nc.Close()
	probe := startProbe(t, connect(t, survivor.url, p.dataDir))
	if !wait.Until(10*time.Second, pollEvery, func() bool { return probe.appends() >= 20 }) {
		t.Fatal("the probe cannot append to the log")
	}

	killed := time.Now()
	leader.proc.kill()
	t.Logf("killed server %d (%s), the leader of the log's stream, with %d of %d work units valid",
		leader.index+1, leader.name, mustBatch(t, before, spec.Batch).Valid, units)
	var next *clusterServer
	if !wait.Until(30*time.Second, pollEvery, func() bool { next = logLeaderOrNil(nc, servers); return next != nil && next != leader }) {
		t.Fatal("no other server leads the log's stream 30 s after the kill")
	}
	t.Logf("server %d (%s) leads the log's stream now", next.index+1, next.name)

	st := p.waitBatchDone(spec.Batch, 90*time.Second)
	pause, appends, err := probe.stop(killed)
	if err != nil {
		t.Error(err)
	} else {
		t.Logf("write pause after killing the log's leader: %.1f s (%d probe appends in all)", pause.Seconds(), appends)
	}

	// Both surviving members apply the log to its end, whichever server
	// their readers had to move to: the tools may ask either.
	var members []vpeer.MemberStatus
	var target uint64
	if !wait.Until(20*time.Second, pollEvery, func() bool {
		members = p.vpeerMembers()
		if target == 0 && len(members) > 0 {
			target = members[0].LogLast
		}
		behind := len(members) != 2
		for _, m := range members {
			behind = behind || m.Applied < target
		}
		return target > 0 && !behind
	}) {
		t.Errorf("members %+v have not all applied the log up to %d", members, target)
	}

	dir, manifest := p.results(spec.Batch)
	checkManifest(t, manifest, spec.Batch, units, quorum)
	checkPrimeResults(t, dir, want)
	b := mustBatch(t, st, spec.Batch)
	if b.Units != units || b.Valid != units || b.Errored != 0 {
		t.Errorf("batch status %+v; want all %d work units valid", b, units)
	}
	// As in TestServerKilledMidBatch: accepting a work unit credits exactly
	// quorum results, whatever failed on the way.
	valid := 0
	for _, h := range st.Hosts {
		t.Logf("host %s (%s): valid %d, invalid %d, lost %d, credit %.6f", h.ID, h.Info.Name, h.Valid, h.Invalid, h.Lost, h.Credit)
		valid += h.Valid
	}
	if valid != units*quorum {
		t.Errorf("hosts hold %d valid results; want exactly %d (%d work units × quorum %d)", valid, units*quorum, units, quorum)
	}
}

// vpeerMembers lists the scheduler's members (not the accounting peer's), as `vpeer status --json`
// reports them.
func (p *project) vpeerMembers() []vpeer.MemberStatus {
	out, _, err := p.cli("vpeer status", "--json", "--wait", "1s")
	var groups []vpeer.GroupSummary
	if err != nil || json.Unmarshal([]byte(out), &groups) != nil {
		return nil
	}
	for _, g := range groups {
		if g.Group == "sched" {
			return g.Members
		}
	}
	return nil
}

// connect opens a connection of the project's tools to url.
func connect(t *testing.T, url, dataDir string) *nats.Conn {
	t.Helper()
	nc, err := nats.Connect(url, nats.UserCredentials(filepath.Join(dataDir, "admin.creds")), nats.Timeout(5*time.Second))
	if err != nil {
		t.Fatalf("connect to %s: %v", url, err)
	}
	return nc
}

// logLeader is the server whose NATS server leads the log's stream.
func logLeader(t *testing.T, nc *nats.Conn, servers []*clusterServer) *clusterServer {
	t.Helper()
	var s *clusterServer
	if !wait.Until(30*time.Second, pollEvery, func() bool { s = logLeaderOrNil(nc, servers); return s != nil }) {
		t.Fatal("the log's stream has no leader")
	}
	return s
}

func logLeaderOrNil(nc *nats.Conn, servers []*clusterServer) *clusterServer {
	js, err := jetstream.New(nc)
	if err != nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	st, err := js.Stream(ctx, "SCHED")
	if err != nil {
		return nil
	}
	info := st.CachedInfo()
	if info.Cluster == nil || len(info.Config.Subjects) == 0 || info.Config.Replicas != 3 {
		return nil
	}
	i := slices.IndexFunc(servers, func(s *clusterServer) bool { return s.name == info.Cluster.Leader })
	if i < 0 {
		return nil
	}
	return servers[i]
}

// probe appends to the scheduler's log, one record at a time, and keeps
// the times of the acknowledged appends.
type probe struct {
	cancel context.CancelFunc
	done   chan struct{}

	mu    sync.Mutex
	acked []time.Time
}

func startProbe(t *testing.T, nc *nats.Conn) *probe {
	t.Helper()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	pr := &probe{cancel: cancel, done: make(chan struct{})}
	record := wu.Encode(wu.Command{V: wu.WireVersion, Op: "probe"})
	go func() {
		defer close(pr.done)
		defer nc.Close()
		for ctx.Err() == nil {
			actx, acancel := context.WithTimeout(ctx, time.Second)
			_, err := js.Publish(actx, "sched.log", record)
			acancel()
			if err != nil {
				continue
			}
			pr.mu.Lock()
			pr.acked = append(pr.acked, time.Now())
			pr.mu.Unlock()
			select {
			case <-ctx.Done():
			case <-time.After(20 * time.Millisecond):
			}
		}
	}()
	return pr
}

func (pr *probe) appends() int {
	pr.mu.Lock()
	defer pr.mu.Unlock()
	return len(pr.acked)
}

// stop stops the probe and returns the pause the kill caused: the longest
// time between two successive acknowledged appends, the second after the
// kill. (An append in flight at the kill may still be acknowledged just
// after it; the pause then starts there.)
func (pr *probe) stop(killed time.Time) (time.Duration, int, error) {
	pr.cancel()
	<-pr.done
	i, _ := slices.BinarySearchFunc(pr.acked, killed, time.Time.Compare)
	if i == 0 || i == len(pr.acked) {
		return 0, len(pr.acked), fmt.Errorf("the probe has %d appends, none before or none after the kill", len(pr.acked))
	}
	var pause time.Duration
	for ; i < len(pr.acked); i++ {
		pause = max(pause, pr.acked[i].Sub(pr.acked[i-1]))
	}
	return pause, len(pr.acked), nil
}
