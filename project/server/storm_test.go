package server

import (
	"context"
	"net"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/momonga-project/momonga/internal/wait"
	"github.com/momonga-project/momonga/project/admin"
	"github.com/momonga-project/momonga/project/hostbench"
	"github.com/momonga-project/momonga/project/sched"
	wu "github.com/momonga-project/momonga/workunits"
)

// stormRig is a secured server on a fixed data directory and address,
// with hosts attached and connected through the auth callout as the
// client connects.
type stormRig struct {
	t     *testing.T
	ctx   context.Context
	dir   string
	addr  string
	fleet *hostbench.Fleet
}

func newStormRig(t *testing.T, ctx context.Context, hosts int) (*stormRig, *Server) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	r := &stormRig{t: t, ctx: ctx, dir: filepath.Join(t.TempDir(), "project"), addr: ln.Addr().String()}
	ln.Close()
	srv := r.start("first start")
	url := srv.ClientURL()
	creds := nats.UserCredentials(srv.AdminCreds())
	adm, err := admin.Dial(ctx, url, creds)
	if err != nil {
		t.Fatal(err)
	}
	_, key, err := adm.AddUser(ctx, "storm", "storm@example.org", "")
	adm.Close()
	if err != nil {
		t.Fatal(err)
	}
	raw, err := nats.Connect(url, creds)
	if err != nil {
		t.Fatal(err)
	}
	attached, err := hostbench.Attach(ctx, raw, key, hosts, 16)
	raw.Close()
	if err != nil {
		t.Fatal(err)
	}
	r.fleet, _, err = hostbench.Connect(ctx, attached, hostbench.FleetConfig{URLs: []string{url}, Concurrency: 16})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(r.fleet.Close)
	return r, srv
}

func (r *stormRig) start(what string) *Server {
	r.t.Helper()
	cfg := Embedded(r.dir, r.addr)
	cfg.TickInterval, cfg.Sched = time.Hour, sched.Config{Lease: time.Minute}
	cfg.HostRate, cfg.HostBurst = 1000, 1000
	srv, err := Start(r.ctx, cfg)
	if err != nil {
		r.t.Fatalf("%s: %v", what, err)
	}
	return srv
}

// waitForEveryHost waits until every host has been answered since t.
func (r *stormRig) waitForEveryHost(t time.Time) []time.Duration {
	r.t.Helper()
	var waiting int
	if !wait.Until(3*time.Minute, 100*time.Millisecond, func() bool {
		_, waiting = r.fleet.ServedSince(t)
		return waiting == 0
	}) {
		r.t.Fatalf("%d of %d hosts not answered again after the restart", waiting, r.fleet.Len())
	}
	served, _ := r.fleet.ServedSince(t)
	return served
}

// TestRestartUnderAReconnectionStorm restarts a secured server on the same
// data and address while a few hundred attached hosts reconnect at once,
// each through the auth callout: a server stopped in the middle of the
// storm stops cleanly (nats-server used to panic when a CONNECT reached
// the callout during its shutdown), and the next one starts, serves and
// answers every host again.
func TestRestartUnderAReconnectionStorm(t *testing.T) {
	if testing.Short() {
		t.Skip("a few hundred connections through the auth callout: skipped in -short mode")
	}
	const hosts = 300
	ctx, cancel := context.WithTimeout(t.Context(), 4*time.Minute)
	defer cancel()
	r, srv := newStormRig(t, ctx, hosts)
	if err := srv.Close(); err != nil {
		t.Fatalf("stop: %v", err)
	}
	// Every host now reconnects; this server is stopped while they do.
	if err := r.start("restart under the storm").Close(); err != nil {
		t.Fatalf("stop during the storm: %v", err)
	}
	restart := time.Now()
	srv = r.start("second restart under the storm")
	defer srv.Close()
	served := r.waitForEveryHost(restart)
	t.Logf("%d hosts answered again within %v of the restart (half within %v)", hosts, served[len(served)-1].Round(time.Millisecond), served[len(served)/2].Round(time.Millisecond))
}

// toolsWait is the longest the project's tools may wait for an answer
// while the hosts of a storm reconnect.
const toolsWait = 5 * time.Second

// TestToolsServedDuringAReconnectionStorm: while a few hundred hosts
// reconnect through the auth callout after a restart, and say hello, the
// project's tools (their own credentials, no callout) are answered
// throughout, none waiting longer than toolsWait once the server serves.
func TestToolsServedDuringAReconnectionStorm(t *testing.T) {
	if testing.Short() {
		t.Skip("a few hundred connections through the auth callout: skipped in -short mode")
	}
	const hosts = 300
	ctx, cancel := context.WithTimeout(t.Context(), 4*time.Minute)
	defer cancel()
	r, srv := newStormRig(t, ctx, hosts)
	adm, err := admin.Dial(ctx, srv.ClientURL(), nats.UserCredentials(srv.AdminCreds()), nats.MaxReconnects(-1), nats.ReconnectWait(50*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	defer adm.Close()
	if err := srv.Close(); err != nil {
		t.Fatalf("stop: %v", err)
	}
	restart := time.Now()
	srv = r.start("restart")
	defer srv.Close()
	serving := time.Now()

	// The tools read the project's state (a batch's results, as of the
	// log's last record) one request after another, from the moment the
	// server serves until every host is back.
	var (
		mu          sync.Mutex
		worst       time.Duration
		answered    int
		duringStorm int // answers while some host still waited
	)
	pctx, pcancel := context.WithCancel(ctx)
	probed := make(chan struct{})
	go func() {
		defer close(probed)
		sent := serving
		for pctx.Err() == nil {
			rctx, rcancel := context.WithTimeout(pctx, 2*toolsWait)
			_, err := adm.Results(rctx, "no-such-batch")
			rcancel()
			if err != nil && wu.ErrorCode(err) != wu.CodeNotFound {
				continue
			}
			_, waiting := r.fleet.ServedSince(restart)
			mu.Lock()
			worst = max(worst, time.Since(sent))
			answered++
			if waiting > 0 {
				duringStorm++
			}
			mu.Unlock()
			sent = time.Now()
			time.Sleep(20 * time.Millisecond)
		}
		// One still unanswered at the end has waited since sent.
		mu.Lock()
		worst = max(worst, time.Since(sent))
		mu.Unlock()
	}()
	served := r.waitForEveryHost(restart)
	pcancel()
	<-probed
	mu.Lock()
	defer mu.Unlock()
	t.Logf("%d hosts answered again within %v of the restart; the tools answered %d times meanwhile (%d while hosts still waited), the longest wait %v",
		hosts, served[len(served)-1].Round(time.Millisecond), answered, duringStorm, worst.Round(time.Millisecond))
	if duringStorm == 0 {
		t.Fatalf("the tools were not answered once while hosts still waited to be answered again (%d answers in all)", answered)
	}
	if worst > toolsWait {
		t.Errorf("a tools' request waited %v during the storm; want at most %v", worst.Round(time.Millisecond), toolsWait)
	}
}
