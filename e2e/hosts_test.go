//go:build linux

package e2e

import (
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/momonga-project/momonga/e2e/netlab"
	"github.com/momonga-project/momonga/project/hostbench"
	wu "github.com/momonga-project/momonga/workunits"
)

// labHostsEnv sets how many hosts TestHostsThroughLeafNodes connects: a
// few hundred by default, 10000 for the figures in the README.
const labHostsEnv = "MOMONGA_LAB_HOSTS"

// volunteerNodes is how many namespaces the hosts are spread over, each
// with an address of its own.
const volunteerNodes = 4

// TestHostsThroughLeafNodes connects attached hosts by the hundred (by the
// ten thousand with MOMONGA_LAB_HOSTS=10000) from four namespaces of their
// own, half through each of two leaf-node servers of a 3-server core, each
// server on a host of its own, as the client connects: its own credentials,
// the auth callout on the leaf asking the core who the key is, a hello.
// Then one leaf restarts, twice, and all its hosts reconnect to it at once:
// every one must be served again, and a host on the other leaf must be
// answered meanwhile. The second time, the hosts are paced by the leaf's
// own number (they name their server in their hellos), not the project's.
// It prints the memory of the leaves and of the core per connected host,
// the connect rate and the storms' times.
func TestHostsThroughLeafNodes(t *testing.T) {
	t.Parallel() // on a lab of its own
	n := 200
	if v := os.Getenv(labHostsEnv); v != "" {
		var err error
		if n, err = strconv.Atoi(v); err != nil || n < 2*2*volunteerNodes {
			t.Fatalf("%s=%q: a number of hosts, at least %d", labHostsEnv, v, 2*2*volunteerNodes)
		}
	}
	c := newLabCluster(t, projectBin, 3)
	edges := c.startEdges(2)
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Minute+time.Duration(n)*60*time.Millisecond)
	defer cancel()

	coreRSS := func() float64 {
		var mb float64
		for _, s := range c.servers {
			m, err := hostbench.SettledRSS(ctx, s.proc.cmd.Process.Pid)
			if err != nil {
				t.Fatal(err)
			}
			mb += m
		}
		return mb
	}
	leafRSS := func() float64 {
		var mb float64
		for _, e := range edges {
			m, err := hostbench.SettledRSS(ctx, e.proc.cmd.Process.Pid)
			if err != nil {
				t.Fatal(err)
			}
			mb += m
		}
		return mb
	}

	// A host on the second leaf, to be answered while the first one's
	// hosts storm back.
	on := c.lab.Node("other")
	other := c.attachProbe("other", on, edges[1].url)
	m := accountKeyLine.FindStringSubmatch(c.mustCLI("user add", "fleet"))
	if m == nil {
		t.Fatal("user add printed no account key")
	}
	adm := c.connectTo(c.servers[0].url)
	defer adm.Close()
	coreBase, leafBase := coreRSS(), leafRSS()
	attachStart := time.Now()
	hosts, err := hostbench.Attach(ctx, adm, m[1], n, 32)
	if err != nil {
		t.Fatal(err)
	}
	attachTook := time.Since(attachStart)
	coreAttached := coreRSS()

	// Host i connects from namespace i%4 to leaf (i/4)%2.
	var nodes []*netlab.Node
	for i := range volunteerNodes {
		nodes = append(nodes, c.lab.Node(fmt.Sprintf("v%d", i+1)))
	}
	type part struct {
		edge  *edge
		fleet *hostbench.Fleet
	}
	parts := make([]part, len(edges)*len(nodes))
	groups := make([][]hostbench.Host, len(parts))
	for i, h := range hosts {
		groups[i%len(parts)] = append(groups[i%len(parts)], h)
	}
	connectStart := time.Now()
	var wg sync.WaitGroup
	errs := make([]error, len(parts))
	for i := range parts {
		e, node := edges[i%len(edges)], nodes[i/len(edges)]
		parts[i].edge = e
		wg.Go(func() {
			parts[i].fleet, _, errs[i] = hostbench.Connect(ctx, groups[i], hostbench.FleetConfig{URLs: []string{e.url}, Dialer: node, Concurrency: 16})
		})
	}
	wg.Wait()
	connectTook := time.Since(connectStart)
	for i, err := range errs {
		if err != nil {
			t.Fatalf("%d hosts from %s to %s: %v", len(groups[i]), nodes[i/len(edges)].Name, parts[i].edge.name, err)
		}
	}
	defer func() {
		for _, p := range parts {
			p.fleet.Close()
		}
	}()
	coreConnected, leafConnected := coreRSS(), leafRSS()

	// The storm: the first leaf restarts; its hosts reconnect to it and
	// say hello again, each through the callout.
	storming := 0
	for _, p := range parts {
		if p.edge == edges[0] {
			storming += p.fleet.Len()
		}
	}
	oc, err := connectAs(other, on, edges[1].url)
	if err != nil {
		t.Fatal(err)
	}
	defer oc.Close()
	if err := helloAs(oc, other); err != nil {
		t.Fatalf("a host of the other leaf, before the storm: %v", err)
	}
	// Twice: the first storm is paced by the spreads the hosts were given
	// when they first said hello, most of the others not having named
	// their server yet; the second by the leaf's own hosts.
	type stormResult struct {
		served       []time.Duration
		worst        time.Duration
		noResponders int
	}
	storm := func() stormResult {
		var r stormResult
		restart := time.Now()
		edges[0].restart(c)
		for {
			// As the client does, a request that finds no responder is sent
			// again after a moment; the wait counts from the first try.
			asked := time.Now()
			for {
				err := helloAs(oc, other)
				if err == nil {
					break
				}
				if !errors.Is(err, nats.ErrNoResponders) || time.Since(asked) > 30*time.Second {
					t.Fatalf("a host of the other leaf, during the storm: %v", err)
				}
				r.noResponders++
				time.Sleep(250 * time.Millisecond)
			}
			r.worst = max(r.worst, time.Since(asked))
			r.served = r.served[:0]
			waiting := 0
			for _, p := range parts {
				if p.edge == edges[0] {
					s, w := p.fleet.ServedSince(restart)
					r.served, waiting = append(r.served, s...), waiting+w
				}
			}
			if waiting == 0 {
				break
			}
			if ctx.Err() != nil {
				t.Fatalf("the storm: %d of %d hosts not served again", waiting, storming)
			}
			time.Sleep(250 * time.Millisecond)
		}
		slices.Sort(r.served)
		return r
	}
	storms := []stormResult{storm(), storm()}
	// The leaf's hosts and the one host that names no server.
	if paced, took := wu.ReconnectSpread(storming+1), storms[1].served[len(storms[1].served)-1]; took > paced+10*time.Second {
		t.Errorf("the second storm took %.1f s: its hosts were paced over more than their leaf's spread (%v)", took.Seconds(), paced)
	}

	kb := func(mb float64) float64 { return mb * 1024 / float64(n) }
	t.Logf("%d hosts from %d namespaces through 2 leaf nodes of a 3-server core:", n, len(nodes))
	t.Logf("  attached in %.1f s (%.0f/s); connected in %.1f s (%.0f/s)", attachTook.Seconds(), float64(n)/attachTook.Seconds(), connectTook.Seconds(), float64(n)/connectTook.Seconds())
	t.Logf("  leaves: %.1f MB with no host, %.1f MB with all: %.1f KB per connected host", leafBase, leafConnected, kb(leafConnected-leafBase))
	t.Logf("  core (3 servers): %.1f MB with no host, %.1f MB attached (%.1f KB per attached host), %.1f MB connected (%.1f KB per connected host)",
		coreBase, coreAttached, kb(coreAttached-coreBase), coreConnected, kb(coreConnected-coreAttached))
	for i, r := range storms {
		t.Logf("  storm %d: leaf restarted, its %d hosts served again: half in %.1f s, all in %.1f s; a host of the other leaf waited %.2f s at worst (%d requests found no responder)",
			i+1, storming, r.served[len(r.served)/2].Seconds(), r.served[len(r.served)-1].Seconds(), r.worst.Seconds(), r.noResponders)
	}
}
