package server

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/momonga-project/momonga/internal/wait"
	"github.com/momonga-project/momonga/project/auth"
	"github.com/momonga-project/momonga/project/auth/probe"
	wu "github.com/momonga-project/momonga/workunits"
)

// startLeaf starts a leaf-node server of p's core, with a copy of the
// core's keys, and returns p as seen through it: hosts attach and connect
// at the leaf.
func startLeaf(t *testing.T, p *secureProject) *secureProject {
	t.Helper()
	lp, _ := startLeafIn(t, p, filepath.Join(t.TempDir(), "leaf"))
	return lp
}

// startLeafIn starts the leaf-node server in dir, and returns also what
// stops it (before the test's end, if called).
func startLeafIn(t *testing.T, p *secureProject, dir string) (*secureProject, func()) {
	t.Helper()
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	keys, err := os.ReadFile(filepath.Join(p.dir, auth.KeysFile))
	if err == nil {
		err = os.WriteFile(filepath.Join(dir, auth.KeysFile), keys, 0o600)
	}
	if err != nil {
		t.Fatal(err)
	}
	hub := p.srv.LeafURL()
	if hub == "" {
		t.Fatal("the core takes no leaf-node connections")
	}
	cfg := Leaf(dir, "127.0.0.1:0", hub)
	cfg.Trust = Trust{TLSCert: p.tls.Cert, TLSKey: p.tls.Key}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	leaf, err := Start(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	var once sync.Once
	stop := func() { once.Do(func() { leaf.Close() }) }
	t.Cleanup(stop)
	// Until the leaf node is up and has learnt the core's interest, its
	// callout cannot ask the core anything.
	wait.For(t, 10*time.Second, "the leaf to reach the core's directory", func() bool {
		_, err := leaf.nc.Request(auth.SubjectDirectoryHost, []byte("nobody"), 500*time.Millisecond)
		return err == nil
	})
	lp := *p
	lp.url = leaf.ClientURL()
	return &lp, stop
}

// TestLeafNodeKeepsItsName: a leaf node has a name of its own, which its
// hosts name in their hellos (the project paces each server's hosts by
// their number), and keeps it when it restarts.
func TestLeafNodeKeepsItsName(t *testing.T) {
	core := startSecure(t, Trust{}, withLeafListener)
	dir := filepath.Join(t.TempDir(), "leaf")
	leaf, stop := startLeafIn(t, core, dir)
	a := leaf.attach("ann")
	name := leaf.mustConnect(a, nil).ConnectedServerName()
	if onCore := core.mustConnect(a, nil).ConnectedServerName(); !wu.ValidName(name) || name == onCore {
		t.Fatalf("the leaf's server name %q, the core's %q: want a name of its own that a hello may carry", name, onCore)
	}
	stop()
	leaf, _ = startLeafIn(t, core, dir)
	if again := leaf.mustConnect(a, nil).ConnectedServerName(); again != name {
		t.Errorf("the leaf restarted as %q, was %q", again, name)
	}
}

func withLeafListener(c *Config) { c.LeafListen = "127.0.0.1:0" }

// TestLeafNodeCarriesHostPermissions attaches and serves hosts through a
// leaf-node server, and checks that a host has there the permissions and
// limits it has on the core: its own subjects and nothing else, its limit
// of connections, and revocation closing its connections at the leaf.
func TestLeafNodeCarriesHostPermissions(t *testing.T) {
	core := startSecure(t, Trust{}, withLeafListener)
	leaf := startLeaf(t, core)
	a, b := leaf.attach("ann"), leaf.attach("bob")
	var ea, eb probe.Errors
	ncA, ncB := leaf.mustConnect(a, &ea), leaf.mustConnect(b, &eb)
	for _, h := range []struct {
		nc *nats.Conn
		id string
	}{{ncA, a.id}, {ncB, b.id}} {
		if err := hello(h.nc, h.id); err != nil {
			t.Fatalf("host %s's own request through the leaf: %v", h.id, err)
		}
	}
	if err := probe.Isolation(ncA, &ea, a.id, b.id, 5*time.Second); err != nil {
		t.Errorf("through the leaf: %v", err)
	}
	// The same host is served on the core too.
	ncCore := core.mustConnect(a, nil)
	if err := hello(ncCore, a.id); err != nil {
		t.Fatalf("host %s on the core: %v", a.id, err)
	}

	// Connections: the leaf counts A's as the core does.
	conns := []*nats.Conn{ncA}
	for len(conns) < int(auth.DefaultLimits().Connections) {
		conns = append(conns, leaf.mustConnect(a, nil))
	}
	if nc, err := leaf.connect(a, nil, nil); err == nil {
		nc.Close()
		t.Fatalf("host %s opened a connection over its limit at the leaf", a.id)
	}

	// Revoked on the core: its connections at the leaf close, and it may
	// not connect there again.
	if err := core.adm.RevokeHost(context.Background(), a.id); err != nil {
		t.Fatal(err)
	}
	wait.For(t, 5*time.Second, "the revoked host's connections at the leaf to close", func() bool {
		for _, nc := range append(conns, ncCore) {
			if !nc.IsClosed() {
				return false
			}
		}
		return true
	})
	if _, err := leaf.connect(a, nil, nil); !errors.Is(err, nats.ErrAuthorization) {
		t.Errorf("revoked key at the leaf: %v", err)
	}
	if err := hello(ncB, b.id); err != nil {
		t.Fatalf("B after A's revocation: %v", err)
	}
}
