package server

import (
	"context"
	"net"
	"path/filepath"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/momonga-project/momonga/internal/wait"
	"github.com/momonga-project/momonga/project/admin"
	"github.com/momonga-project/momonga/project/hostbench"
	"github.com/momonga-project/momonga/project/sched"
)

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
	dir := filepath.Join(t.TempDir(), "project")
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	start := func(what string) *Server {
		t.Helper()
		cfg := Embedded(dir, addr)
		cfg.TickInterval, cfg.Sched = time.Hour, sched.Config{Lease: time.Minute}
		cfg.HostRate, cfg.HostBurst = 1000, 1000
		srv, err := Start(ctx, cfg)
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		return srv
	}

	srv := start("first start")
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
	fleet, _, err := hostbench.Connect(ctx, attached, hostbench.FleetConfig{URLs: []string{url}, Concurrency: 16})
	if err != nil {
		t.Fatal(err)
	}
	defer fleet.Close()

	if err := srv.Close(); err != nil {
		t.Fatalf("stop: %v", err)
	}
	// Every host now reconnects; this server is stopped while they do.
	if err := start("restart under the storm").Close(); err != nil {
		t.Fatalf("stop during the storm: %v", err)
	}
	restart := time.Now()
	srv = start("second restart under the storm")
	defer srv.Close()
	var waiting int
	if !wait.Until(3*time.Minute, 100*time.Millisecond, func() bool {
		_, waiting = fleet.ServedSince(restart)
		return waiting == 0
	}) {
		t.Fatalf("%d of %d hosts not answered again after the restart", waiting, hosts)
	}
	served, _ := fleet.ServedSince(restart)
	t.Logf("%d hosts answered again within %v of the restart (half within %v)", hosts, served[len(served)-1].Round(time.Millisecond), served[len(served)/2].Round(time.Millisecond))
}
