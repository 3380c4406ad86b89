//go:build linux

package e2e

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/anishathalye/porcupine"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/momonga-project/momonga/e2e/netlab"
	"github.com/momonga-project/momonga/internal/wait"
	"github.com/momonga-project/momonga/project/admin"
	"github.com/momonga-project/momonga/project/sched/schedtest"
	"github.com/momonga-project/momonga/vpeer/jetlog"
	wu "github.com/momonga-project/momonga/workunits"
)

// These tests run a project across network namespaces (e2e/netlab): each
// server on a host of its own, and break the network between them.

// labCluster is a project served by a NATS cluster of `serve` processes,
// each in a namespace of its own; tools run on a host of their own.
type labCluster struct {
	*project
	lab     *netlab.Lab
	tools   *netlab.Node
	servers []*labServer
}

type labServer struct {
	index int
	node  *netlab.Node
	name  string // its NATS server name, as JetStream names leaders
	url   string
	proc  *proc
}

// Ports every server listens on, each at its own address.
const (
	natsPort    = 4222
	clusterPort = 6222
	leafPort    = 7422
)

// newLabCluster starts n servers of bin (momonga-project) in a cluster,
// with extra flags for serve.
func newLabCluster(t *testing.T, bin string, n int, extra ...string) *labCluster {
	t.Helper()
	if testing.Short() {
		t.Skip("end-to-end test, skipped in -short mode (testing.Short): it runs real servers in network namespaces for a minute")
	}
	lab := netlab.New(t)
	c := &labCluster{lab: lab, tools: lab.Node("tools")}
	c.project = &project{t: t, dir: t.TempDir(), in: c.tools.Command}
	t.Cleanup(func() { checkNoWorkers(t) })
	var routes, urls []string
	for i := range n {
		s := &labServer{index: i, node: lab.Node(fmt.Sprintf("s%d", i+1))}
		c.servers = append(c.servers, s)
		routes = append(routes, "nats://"+s.node.HostPort(clusterPort))
		s.url = "nats://" + s.node.HostPort(natsPort)
		urls = append(urls, s.url)
	}
	c.dataDir = filepath.Join(c.dir, "server-1")
	if out, err := exec.Command(bin, "init", "--data", c.dataDir).CombinedOutput(); err != nil {
		t.Fatalf("momonga-project init: %v\n%s", err, out)
	}
	for i, s := range c.servers {
		dataDir := filepath.Join(c.dir, fmt.Sprintf("server-%d", i+1))
		if i > 0 {
			copyFiles(t, c.dataDir, dataDir, "nats-keys.json", "signing.pub")
		}
		args := []string{bin, "--verbose", "serve", "--data", dataDir, "--nats-listen", s.node.HostPort(natsPort), "--http", "",
			"--cluster-name", "momonga-lab", "--cluster-listen", s.node.HostPort(clusterPort), "--routes", strings.Join(routes, ",")}
		s.proc = start(t, c.dir, fmt.Sprintf("server-%d", i+1), s.node.Command(append(args, extra...)...)...)
	}
	for i, s := range c.servers {
		s.proc.waitLine(servingLine, 90*time.Second)
		b, err := os.ReadFile(filepath.Join(c.dir, fmt.Sprintf("server-%d", i+1), "server-name"))
		if err != nil {
			t.Fatalf("server %d keeps no name: %v", i+1, err)
		}
		s.name = strings.TrimSpace(string(b))
	}
	c.url = strings.Join(urls, ",")
	return c
}

func copyFiles(t *testing.T, from, to string, names ...string) {
	t.Helper()
	if err := os.MkdirAll(to, 0o700); err != nil {
		t.Fatal(err)
	}
	for _, f := range names {
		b, err := os.ReadFile(filepath.Join(from, f))
		if err == nil {
			err = os.WriteFile(filepath.Join(to, f), b, 0o600)
		}
		if err != nil {
			t.Fatal(err)
		}
	}
}

// connect opens a connection from the tools' host to the cluster, with
// opts (credentials, for a secured project).
func (c *labCluster) connect(opts ...nats.Option) *nats.Conn {
	c.t.Helper()
	opts = append([]nats.Option{nats.SetCustomDialer(c.tools), nats.MaxReconnects(-1), nats.ReconnectWait(100 * time.Millisecond), nats.Timeout(5 * time.Second)}, opts...)
	nc, err := nats.Connect(c.url, opts...)
	if err != nil {
		c.t.Fatalf("connect to the cluster from %s: %v", c.tools.Name, err)
	}
	c.t.Cleanup(nc.Close)
	return nc
}

// serverOf is the server whose process is named by a log record's origin
// (the host name, the process id, a random suffix).
func (c *labCluster) serverOf(origin string) *labServer {
	for _, s := range c.servers {
		if strings.Contains(origin, "-"+strconv.Itoa(s.proc.cmd.Process.Pid)+"-") {
			return s
		}
	}
	return nil
}

func (c *labCluster) byName(name string) *labServer {
	i := slices.IndexFunc(c.servers, func(s *labServer) bool { return s.name == name })
	if i < 0 {
		return nil
	}
	return c.servers[i]
}

// streamLeader is the server leading the log's stream, or nil.
func (c *labCluster) streamLeader(js jetstream.JetStream) *labServer {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	st, err := js.Stream(ctx, "SCHED")
	if err != nil {
		return nil
	}
	info := st.CachedInfo()
	if info.Cluster == nil || info.Config.Replicas != 3 {
		return nil
	}
	return c.byName(info.Cluster.Leader)
}

// logRecord is a record of the scheduler's log, as the audit reads it.
type logRecord struct {
	seq    uint64
	origin string    // the process that appended it
	tick   time.Time // of a tick
	cmd    wu.Command
}

// readLog reads the scheduler's whole log, trying again for a minute
// while the cluster cannot answer (a stream electing its leader).
func readLog(t *testing.T, js jetstream.JetStream) []logRecord {
	t.Helper()
	var recs []logRecord
	var err error
	if !wait.Until(time.Minute, pollEvery, func() bool { recs, err = tryReadLog(js); return err == nil }) {
		t.Fatalf("read the log: %v", err)
	}
	return recs
}

func tryReadLog(js jetstream.JetStream) ([]logRecord, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	st, err := js.Stream(ctx, "SCHED")
	if err != nil {
		return nil, err
	}
	state := st.CachedInfo().State
	var recs []logRecord
	for seq := state.FirstSeq; seq <= state.LastSeq; seq++ {
		msg, err := st.GetMsg(ctx, seq)
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			continue // trimmed behind a snapshot
		}
		if err != nil {
			return nil, fmt.Errorf("record %d of %d: %w", seq, state.LastSeq, err)
		}
		r := logRecord{seq: seq, origin: msg.Header.Get(jetlog.HeaderOrigin)}
		if v := msg.Header.Get(jetlog.HeaderTick); v != "" {
			ns, _ := strconv.ParseInt(v, 10, 64)
			r.tick = time.Unix(0, ns)
		} else {
			_ = json.Unmarshal(msg.Data, &r.cmd)
		}
		recs = append(recs, r)
	}
	return recs, nil
}

// leaseOverlap audits the ticks appended after cut: the lease holder then
// (the origin of the last tick before it) against the first other process
// to tick after it. It returns the old holder's ticks after the new
// holder's first, and how long after that first tick the old holder's last
// one came.
func leaseOverlap(recs []logRecord, cut time.Time) (old, successor string, late int, overlap time.Duration) {
	first := -1
	for i, r := range recs {
		if r.tick.IsZero() || r.origin == "" {
			continue
		}
		if r.tick.Before(cut) {
			old = r.origin
			continue
		}
		if first < 0 && r.origin != old {
			first, successor = i, r.origin
		}
		if first >= 0 && r.origin == old {
			late++
			overlap = max(overlap, r.tick.Sub(recs[first].tick))
		}
	}
	return old, successor, late, overlap
}

// availability records when volunteers' requests were answered.
type availability struct {
	mu       sync.Mutex
	answered []time.Time
}

func (a *availability) add(at time.Time) {
	a.mu.Lock()
	a.answered = append(a.answered, at)
	a.mu.Unlock()
}

// longestGap is the longest time between two answers in [from, to].
func (a *availability) longestGap(from, to time.Time) time.Duration {
	a.mu.Lock()
	defer a.mu.Unlock()
	ts := slices.Clone(a.answered)
	slices.SortFunc(ts, time.Time.Compare)
	prev, gap := from, time.Duration(0)
	for _, t := range ts {
		if t.Before(from) {
			continue
		}
		if t.After(to) {
			break
		}
		gap, prev = max(gap, t.Sub(prev)), t
	}
	return max(gap, to.Sub(prev))
}

// firstAfter is when the first answer after at came.
func (a *availability) firstAfter(at time.Time) time.Time {
	a.mu.Lock()
	defer a.mu.Unlock()
	var first time.Time
	for _, t := range a.answered {
		if t.After(at) && (first.IsZero() || t.Before(first)) {
			first = t
		}
	}
	return first
}

// faultNumbers are what a scenario prints for one fault.
type faultNumbers struct {
	name          string
	unavailable   time.Duration // longest time no volunteer request was answered, from the fault to the end of recovery
	workLost      float64       // CPU seconds computed again
	recover       time.Duration // from healing to a volunteer request answered again
	overlap       string        // the lease audit, where it applies
	lateAppends   int
	leaseOverlaps time.Duration
}

func (f faultNumbers) log(t *testing.T) {
	t.Logf("%s: unavailability %.2f s, work lost %.1f CPU s, recovery after healing %.2f s%s",
		f.name, f.unavailable.Seconds(), f.workLost, f.recover.Seconds(), f.overlap)
}

// simVolunteers runs n simulated volunteers (schedtest) through the tools'
// host until ctx ends or the batch has no task left for them, recording
// their history and when they were answered.
func (c *labCluster) simVolunteers(ctx context.Context, n int, hist *schedtest.History, avail *availability, output []byte) (wait func() []error) {
	var wg sync.WaitGroup
	var mu sync.Mutex
	var errs []error
	var idle atomic.Int32
	for i := range n {
		nc := c.connect()
		request := func(ctx context.Context, subject string, data []byte) ([]byte, error) {
			msg, err := nc.RequestWithContext(ctx, subject, data)
			if err != nil {
				return nil, err
			}
			avail.add(time.Now())
			return msg.Data, nil
		}
		v := schedtest.NewVolunteer(i, request, hist, output)
		wg.Go(func() {
			fail := func(err error) {
				mu.Lock()
				errs = append(errs, err)
				mu.Unlock()
			}
			if err := v.Hello(ctx); err != nil {
				fail(err)
				return
			}
			for ctx.Err() == nil {
				out, err := v.Work(ctx)
				if err != nil {
					if ctx.Err() == nil {
						fail(err)
					}
					return
				}
				if len(out.Tasks) == 0 {
					idle.Add(1)
					return
				}
				for _, task := range out.Tasks {
					select {
					case <-ctx.Done():
						return
					case <-time.After(50 * time.Millisecond): // computing
					}
					res, err := v.Result(ctx, task)
					if err != nil {
						if ctx.Err() == nil {
							fail(err)
						}
						return
					}
					if res.Err != "" {
						fail(fmt.Errorf("%s: result for %s refused: %s", v.Host, task, res.Err))
					}
				}
			}
		})
	}
	return func() []error { wg.Wait(); return errs }
}

// partitionScenario is the cluster under partitions: simulated volunteers
// work through a batch of single-replica units while the server leading
// the log's stream is cut off for longer than an election, then healed,
// and then the server whose member holds the scheduler's lease. It checks
// exactly-once and the history, audits the log for two lease holders
// acting at once, and returns the numbers and what the audit found.
func partitionScenario(t *testing.T, bin string, faults []string, cutFor time.Duration) []faultNumbers {
	c := newLabCluster(t, bin, 3, "--open", "--lease", "10m", "--beat", "1s")
	ctx, cancel := context.WithTimeout(t.Context(), 4*time.Minute)
	defer cancel()
	c.mustCLI("app add", "primes", primesWasm)
	adm, err := admin.Dial(ctx, c.url, nats.SetCustomDialer(c.tools), nats.MaxReconnects(-1), nats.ReconnectWait(100*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	defer adm.Close()
	output := []byte("42\n")
	if _, err := adm.PutBlob(ctx, output); err != nil {
		t.Fatal(err)
	}
	const units = 1500
	sub := wu.Submit{Batch: "partitions", App: "primes", Replication: 1, Quorum: 1, DeadlineSeconds: 3600}
	for i := range units {
		sub.Units = append(sub.Units, wu.UnitSpec{Args: []string{"0", strconv.Itoa(i)}})
	}
	ids, err := adm.Submit(ctx, sub)
	if err != nil {
		t.Fatal(err)
	}
	tasks := make([]string, len(ids))
	for i, id := range ids {
		tasks[i] = id + "_0"
	}
	nc := c.connect()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}

	hist, avail := schedtest.NewHistory(), &availability{}
	vctx, vcancel := context.WithCancel(ctx)
	defer vcancel()
	waitVolunteers := c.simVolunteers(vctx, 4, hist, avail, output)

	var numbers []faultNumbers
	for _, fault := range faults {
		var victim *labServer
		switch fault {
		case "log leader":
			if !wait.Until(30*time.Second, pollEvery, func() bool { victim = c.streamLeader(js); return victim != nil }) {
				t.Fatal("the log's stream has no leader")
			}
		case "lease holder":
			recs := readLog(t, js)
			for _, r := range slices.Backward(recs) {
				if !r.tick.IsZero() {
					victim = c.serverOf(r.origin)
					break
				}
			}
			if victim == nil {
				t.Fatal("no tick in the log names a server as its appender")
			}
		}
		cut := time.Now()
		c.lab.Cut(victim.node)
		t.Logf("cut off server %d (%s), the %s, for %v", victim.index+1, victim.name, fault, cutFor)
		select {
		case <-ctx.Done():
			t.Fatal("test ended during the cut")
		case <-time.After(cutFor): // the outage, not a wait for a condition
		}
		healed := time.Now()
		c.lab.Heal()
		// Recovered: the cut-off server's stream replicas current and
		// volunteers answered again.
		var back time.Time
		if !wait.Until(60*time.Second, pollEvery, func() bool { back = avail.firstAfter(healed); return !back.IsZero() }) {
			t.Fatalf("no volunteer request answered within a minute of healing the %s's cut", fault)
		}
		f := faultNumbers{name: fault, unavailable: avail.longestGap(cut, back), recover: back.Sub(healed)}
		if fault == "lease holder" {
			// The old holder's member must have stopped acting: give it the
			// time to have ticked after healing, were it still acting.
			select {
			case <-ctx.Done():
			case <-time.After(5 * time.Second):
			}
			old, successor, late, overlap := leaseOverlap(readLog(t, js), cut)
			f.lateAppends, f.leaseOverlaps = late, overlap
			f.overlap = fmt.Sprintf("; lease: %s, then %s; ticks by the old holder after the new one's first: %d (overlap %.2f s)",
				short(old), short(successor), late, overlap.Seconds())
			if successor == "" {
				t.Errorf("no other process took the lease while its holder was cut off for %v", cutFor)
			}
		}
		numbers = append(numbers, f)
	}

	// The batch completes: every task assigned once and reported once.
	if !wait.Until(2*time.Minute, pollEvery, func() bool {
		st, err := adm.Status(ctx)
		return err == nil && len(st.Batches) == 1 && st.Batches[0].Valid == units
	}) {
		t.Fatal("the batch did not complete within two minutes of the last heal")
	}
	vcancel()
	for _, err := range waitVolunteers() {
		t.Error(err)
	}
	st, err := adm.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if b := st.Batches[0]; b.Valid != units || b.Tasks[wu.TaskReported] != units {
		t.Errorf("batch after the run: %+v; want all %d units valid, each task reported once", b, units)
	}
	if res := schedtest.Check(t, tasks, hist.Operations()); res != porcupine.Ok {
		t.Errorf("the history of %d operations is %s", len(hist.Operations()), res)
	}
	// Single-replica units of simulated volunteers: nothing is computed
	// twice unless a task went to two hosts, which porcupine refuses.
	reports := map[string]int{}
	for _, r := range readLog(t, js) {
		if r.cmd.Op == wu.OpResult {
			reports[fmt.Sprintf("%s/%d", r.cmd.Host, r.cmd.Seq)]++
		}
	}
	t.Logf("%d result reports in the log (retries with the same sequence number counted once)", len(reports))
	for _, f := range numbers {
		f.log(t)
	}
	return numbers
}

// short is a process name without its host name.
func short(process string) string {
	if i := strings.IndexByte(process, '-'); i >= 0 {
		return process[i+1:]
	}
	return process
}

// TestClusterPartitions cuts off the log's stream leader, then the lease
// holder's server, each for longer than an election, during a batch.
func TestClusterPartitions(t *testing.T) {
	for _, f := range partitionScenario(t, projectBin, []string{"log leader", "lease holder"}, 20*time.Second) {
		if f.lateAppends > 0 {
			t.Errorf("the cut-off lease holder appended %d ticks after its successor's first (overlap %v)", f.lateAppends, f.leaseOverlaps)
		}
	}
}
