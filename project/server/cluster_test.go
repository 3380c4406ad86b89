package server

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	natsserver "github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/momonga-project/momonga/internal/wait"
	"github.com/momonga-project/momonga/project/admin"
	"github.com/momonga-project/momonga/project/auth"
	"github.com/momonga-project/momonga/project/blobs"
	"github.com/momonga-project/momonga/project/sched"
	wu "github.com/momonga-project/momonga/workunits"
)

// Two processes serve one project on an external NATS server: each runs one
// member of a group of two and a gateway, they agree on the group, one of
// them holds the lease, and an upload whose chunks the queue group spreads
// over both gateways is stored whole.
func TestTwoProcessesServeOnOneExternalNATS(t *testing.T) {
	ns, err := natsserver.NewServer(&natsserver.Options{Host: "127.0.0.1", Port: natsserver.RANDOM_PORT, JetStream: true, StoreDir: t.TempDir(), NoSigs: true})
	if err != nil {
		t.Fatal(err)
	}
	go ns.Start()
	if !ns.ReadyForConnections(10 * time.Second) {
		t.Fatal("nats server not ready")
	}
	t.Cleanup(func() { ns.Shutdown(); ns.WaitForShutdown() })
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()

	var servers [2]*Server
	for i := range servers {
		cfg := External(ns.ClientURL())
		cfg.GroupSize = 2
		cfg.Sched = sched.Config{Lease: time.Duration(i+1) * time.Minute}
		cfg.Heartbeat = 100 * time.Millisecond
		cfg.Trust = Trust{SigningKey: testKey.Public().(ed25519.PublicKey)}
		srv, err := Start(ctx, cfg)
		if err != nil {
			t.Fatalf("process %d: %v", i+1, err)
		}
		t.Cleanup(func() { srv.Close() })
		servers[i] = srv
	}
	for i, srv := range servers {
		if n := len(srv.Group().Members()); n != 1 {
			t.Errorf("process %d runs %d members, want 1", i+1, n)
		}
		// The second process adopted the policy the first recorded.
		if srv.cfg.Sched.Lease != time.Minute {
			t.Errorf("process %d runs the scheduler with a %s lease; the first recorded 1m", i+1, srv.cfg.Sched.Lease)
		}
	}
	holders := func() (n int) {
		for _, srv := range servers {
			if srv.group.Leading() {
				n++
			}
		}
		return n
	}
	if !wait.Until(10*time.Second, 20*time.Millisecond, func() bool { return holders() == 1 }) {
		t.Errorf("%d processes hold the lease, want 1", holders())
	}

	nc, err := nats.Connect(ns.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	blob := bytes.Repeat([]byte("0123456789abcdef"), 5*blobs.ChunkBytes/16+7)
	h, size := wu.HashOf(blob), len(blob)
	for offset := 0; offset < size; {
		end := min(offset+blobs.ChunkBytes, size)
		reply := blobRequest(t, nc, wu.VolunteerSubject("h1", wu.OpBlobPut), map[string]string{
			wu.HeaderHash: string(h), wu.HeaderSize: strconv.Itoa(size), wu.HeaderOffset: strconv.Itoa(offset)}, blob[offset:end])
		done, err := strconv.Atoi(reply.Header.Get(wu.HeaderDone))
		if err != nil || done != end {
			t.Fatalf("chunk at %d: done %q (%s), want %d", offset, reply.Header.Get(wu.HeaderDone), reply.Header.Get(wu.HeaderError), end)
		}
		offset = end
	}
	adm, err := admin.Dial(ctx, ns.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	defer adm.Close()
	got, err := adm.Blob(ctx, h)
	if err != nil || !bytes.Equal(got, blob) {
		t.Fatalf("uploaded blob: %d bytes, %v; want the %d uploaded", len(got), err, size)
	}
}

func TestClusterSizeAndBadFlags(t *testing.T) {
	routes := []string{"nats://127.0.0.1:6221", "nats://127.0.0.1:6222", "nats://127.0.0.1:6223"}
	for _, c := range []struct {
		cluster Cluster
		size    int
	}{
		{Cluster{Name: "c", Listen: "127.0.0.1:6221", Routes: routes}, 3},                    // its own route among them
		{Cluster{Name: "c", Listen: "127.0.0.1:6224", Routes: routes}, 4},                    // the others' only
		{Cluster{Name: "c", Listen: "127.0.0.1:6221", Routes: routes[1:2]}, 2},               // one other
		{Cluster{Name: "c", Listen: "127.0.0.1:6221", Routes: append(routes, routes[0])}, 3}, // repeated
	} {
		if err := c.cluster.check(); err != nil {
			t.Errorf("%+v: %v", c.cluster, err)
		}
		if got := c.cluster.Size(); got != c.size {
			t.Errorf("%+v: size %d, want %d", c.cluster, got, c.size)
		}
	}
	for _, bad := range []Cluster{
		{Name: "c", Routes: routes},
		{Name: "c", Listen: "6221", Routes: routes},
		{Name: "c", Listen: "127.0.0.1:6221"},
		{Name: "c", Listen: "127.0.0.1:6221", Routes: []string{"127.0.0.1:6222"}},
		{Name: "c", Listen: "127.0.0.1:6221", Routes: []string{"http://127.0.0.1:6222"}},
		{Name: "c", Listen: "127.0.0.1:6221", Routes: []string{"nats://127.0.0.1"}},
	} {
		if err := bad.check(); err == nil {
			t.Errorf("%+v accepted", bad)
		}
	}
}

// Two secured servers given the same keys file form a cluster and serve the
// project together (R2); a third with keys of its own is refused by their
// route listeners and never serves.
func TestSecuredClusterSharesKeys(t *testing.T) {
	if testing.Short() {
		t.Skip("starts three NATS servers")
	}
	dirs := []string{t.TempDir(), t.TempDir(), t.TempDir()}
	if _, err := auth.LoadOrCreateKeys(dirs[0]); err != nil {
		t.Fatal(err)
	}
	keys, err := os.ReadFile(filepath.Join(dirs[0], auth.KeysFile))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dirs[1], auth.KeysFile), keys, 0o600); err != nil {
		t.Fatal(err)
	}
	ports := freeLoopbackPorts(t, 3)
	routes := []string{"nats://127.0.0.1:" + strconv.Itoa(ports[0]), "nats://127.0.0.1:" + strconv.Itoa(ports[1])}
	config := func(i int) Config {
		cfg := Clustered(dirs[i], "127.0.0.1:0", Cluster{Name: "c", Listen: "127.0.0.1:" + strconv.Itoa(ports[i]), Routes: routes})
		cfg.Sched = sched.Config{Lease: time.Minute}
		return cfg
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	var servers [2]*Server
	errs := make(chan error, 2)
	for i := range servers {
		go func() {
			srv, err := Start(ctx, config(i))
			servers[i] = srv
			errs <- err
		}()
	}
	for range servers {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	for _, srv := range servers {
		t.Cleanup(func() { srv.Close() })
	}
	adm, err := admin.Dial(ctx, servers[1].ClientURL(), nats.UserCredentials(servers[0].AdminCreds()))
	if err != nil {
		t.Fatalf("the tools' credentials of one server on the other: %v", err)
	}
	defer adm.Close()
	if _, err := adm.Status(ctx); err != nil {
		t.Fatal(err)
	}

	octx, ocancel := context.WithTimeout(ctx, 5*time.Second)
	defer ocancel()
	srv, err := Start(octx, config(2))
	if err == nil {
		srv.Close()
		t.Fatal("a server with keys of its own joined the cluster")
	}
	if !strings.Contains(err.Error(), "no JetStream leader") {
		t.Errorf("a server with keys of its own: %v; want it to find no JetStream leader, its routes refused", err)
	}
}

// freeLoopbackPorts finds n free loopback ports for routes.
func freeLoopbackPorts(t *testing.T, n int) []int {
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

// startNATSCluster starts n NATS servers with JetStream in the test's
// process, routed to each other on loopback, and returns them.
func startNATSCluster(t *testing.T, n int) []*natsserver.Server {
	t.Helper()
	ports := freeLoopbackPorts(t, n)
	var routes []*url.URL
	for _, p := range ports {
		routes = append(routes, &url.URL{Scheme: "nats", Host: net.JoinHostPort("127.0.0.1", strconv.Itoa(p))})
	}
	var servers []*natsserver.Server
	for i := range n {
		ns, err := natsserver.NewServer(&natsserver.Options{
			ServerName: "ext-" + strconv.Itoa(i), Host: "127.0.0.1", Port: natsserver.RANDOM_PORT,
			JetStream: true, StoreDir: t.TempDir(), NoSigs: true, NoLog: true,
			Cluster: natsserver.ClusterOpts{Name: "ext", Host: "127.0.0.1", Port: ports[i]}, Routes: routes,
		})
		if err != nil {
			t.Fatal(err)
		}
		go ns.Start()
		t.Cleanup(func() { ns.Shutdown(); ns.WaitForShutdown() })
		servers = append(servers, ns)
	}
	for _, ns := range servers {
		if !ns.ReadyForConnections(10 * time.Second) {
			t.Fatal("nats server not ready")
		}
	}
	return servers
}

// Two processes serve one project on an external cluster of three NATS
// servers, as `serve --nats-url n1,n2,n3 --replicas 3` does: both virtual
// peers' logs are replicated on all three, and when the server that leads
// the scheduler's log stops, the log takes records again once the others
// have elected a new leader, and both processes' members apply them, all
// within a minute of the stop.
func TestServeOnAnExternalCluster(t *testing.T) {
	servers := startNATSCluster(t, 3)
	var urls []string
	for _, ns := range servers {
		urls = append(urls, ns.ClientURL())
	}
	all := strings.Join(urls, ",")
	// Setting up is not what is measured: creating the project's
	// replicated streams took up to 40 s on a busy machine here. The
	// recovery has a budget of its own, from the stop.
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()

	var procs [2]*Server
	for i := range procs {
		cfg := External(all)
		cfg.Replicas, cfg.GroupSize, cfg.Heartbeat = 3, 2, 100*time.Millisecond
		cfg.Trust = Trust{SigningKey: testKey.Public().(ed25519.PublicKey)}
		srv, err := Start(ctx, cfg)
		if err != nil {
			t.Fatalf("process %d: %v", i+1, err)
		}
		t.Cleanup(func() { srv.Close() })
		procs[i] = srv
	}
	nc, err := nats.Connect(all, nats.MaxReconnects(-1))
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	leader := ""
	for _, name := range []string{LogStream, AcctStream} {
		st, err := js.Stream(ctx, name)
		if err != nil {
			t.Fatal(err)
		}
		info := st.CachedInfo()
		if info.Config.Replicas != 3 || info.Cluster == nil || len(info.Cluster.Replicas) != 2 {
			t.Fatalf("stream %s: %d replicas configured, cluster %+v; want 3", name, info.Config.Replicas, info.Cluster)
		}
		if name == LogStream {
			leader = info.Cluster.Leader
		}
	}

	adm, err := admin.Dial(ctx, all, nats.MaxReconnects(-1))
	if err != nil {
		t.Fatal(err)
	}
	defer adm.Close()
	if _, err := adm.AddTeam(ctx, "before", ""); err != nil {
		t.Fatal(err)
	}
	for _, ns := range servers {
		if ns.Name() == leader {
			ns.Shutdown()
			ns.WaitForShutdown()
		}
	}
	const recovery = time.Minute
	rctx, rcancel := context.WithTimeout(ctx, recovery)
	defer rcancel()
	var after error
	if !wait.Until(recovery, 200*time.Millisecond, func() bool {
		// An attempt unanswered in time is followed by another with a new
		// number. The record of one may still be stored, and applied once
		// the members read the log again, its answer long gone: the next
		// attempt then finds the team there, a conflict.
		callCtx, callCancel := context.WithTimeout(rctx, 3*time.Second)
		defer callCancel()
		_, after = adm.AddTeam(callCtx, "after", "")
		return after == nil || wu.ErrorCode(after) == wu.CodeConflict
	}) {
		t.Fatalf("the log took no record in the %v after its leader %s stopped: %v", recovery, leader, after)
	}
	for i, srv := range procs {
		wait.For(t, time.Until(deadline(rctx)), fmt.Sprintf("process %d's member to have teams before and after", i+1), func() bool {
			var teams []string
			if err := query(srv, func(m *sched.Machine) {
				for _, tm := range m.Status().Teams {
					teams = append(teams, tm.Name)
				}
			}); err != nil {
				t.Fatal(err)
			}
			return slices.Contains(teams, "before") && slices.Contains(teams, "after")
		})
	}
	st, err := js.Stream(ctx, LogStream)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("log leader %s stopped; the log's new leader is %s", leader, st.CachedInfo().Cluster.Leader)
}

// deadline is ctx's deadline.
func deadline(ctx context.Context) time.Time {
	d, _ := ctx.Deadline()
	return d
}
