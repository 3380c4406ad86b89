package server

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"strconv"
	"testing"
	"time"

	natsserver "github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"

	"github.com/momonga-project/momonga/project/admin"
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
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	var servers [2]*Server
	for i := range servers {
		srv, err := Start(ctx, Config{DataDir: t.TempDir(), NATSURL: ns.ClientURL(), GroupSize: 2, Members: 1,
			Sched: sched.Config{Lease: time.Duration(i+1) * time.Minute}, Heartbeat: 100 * time.Millisecond,
			Trust: Trust{SigningKey: testKey.Public().(ed25519.PublicKey)}})
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
	deadline := time.Now().Add(10 * time.Second)
	for holders() != 1 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if n := holders(); n != 1 {
		t.Errorf("%d processes hold the lease, want 1", n)
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
