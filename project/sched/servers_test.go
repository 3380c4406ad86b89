package sched

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"slices"
	"testing"
	"time"

	wu "github.com/momonga-project/momonga/workunits"
)

// helloThrough says hello as host through the server called server, and
// returns the reply.
func (h *harness) helloThrough(host, server string) wu.HelloReply {
	h.t.Helper()
	raw := h.apply(wu.Command{V: 1, Op: wu.OpHello, Host: host, Body: wu.Encode(wu.Hello{V: 1, Host: wu.HostInfo{Name: host, CPUs: 1}, Server: server})})
	var r wu.HelloReply
	if err := json.Unmarshal(raw, &r); err != nil {
		h.t.Fatalf("hello: %s %v", raw, err)
	}
	return r
}

// spread is the reconnect spread host is given when it says hello
// through server now.
func (h *harness) spread(host, server string) float64 {
	h.t.Helper()
	r := h.helloThrough(host, server)
	if r.Error != nil {
		h.t.Fatalf("hello of %s through %q: %v", host, server, r.Error)
	}
	return r.ReconnectSpreadSeconds
}

// TestReconnectSpreadCountsTheHostsOfOneServer: a host's reconnections are
// spread by the number of hosts that last said hello through its server,
// plus the hosts that named none; a host that names none is spread by all
// of them. 400 hosts a second are admitted (wu.ReconnectRate).
func TestReconnectSpreadCountsTheHostsOfOneServer(t *testing.T) {
	h := newHarness(t)
	for i := range 1000 {
		h.helloThrough(fmt.Sprintf("a%d", i), "leaf-a")
	}
	for i := range 2000 {
		h.helloThrough(fmt.Sprintf("b%d", i), "leaf-b")
	}
	for i := range 400 {
		h.helloThrough(fmt.Sprintf("n%d", i), "")
	}
	want := map[string]float64{"a0": (1000 + 400) / 400.0, "b0": (2000 + 400) / 400.0, "n0": 3400 / 400.0}
	for host, w := range want {
		server := map[byte]string{'a': "leaf-a", 'b': "leaf-b", 'n': ""}[host[0]]
		if got := h.spread(host, server); math.Abs(got-w) > 1e-6 {
			t.Errorf("%s through %q: spread %g s, want %g s", host, server, got, w)
		}
	}

	// A host that moves counts for its new server only.
	if got, w := h.spread("b1", "leaf-a"), (1001+400)/400.0; math.Abs(got-w) > 1e-6 {
		t.Errorf("b1 moved to leaf-a: spread %g s, want %g s", got, w)
	}
	if got, w := h.spread("b2", "leaf-b"), (1999+400)/400.0; math.Abs(got-w) > 1e-6 {
		t.Errorf("leaf-b after b1 left: spread %g s, want %g s", got, w)
	}

	// Every host of leaf-a moves to leaf-c: leaf-a's place is given up and
	// taken by the next new server.
	for i := range 1000 {
		h.helloThrough(fmt.Sprintf("a%d", i), "leaf-c")
	}
	h.helloThrough("b1", "leaf-c")
	if want := []string{"", "leaf-b", "leaf-c"}; !slices.Equal(h.m.st.Servers, want) {
		t.Fatalf("servers %q, want %q", h.m.st.Servers, want)
	}
	h.helloThrough("d0", "leaf-d")
	if want := []string{"leaf-d", "leaf-b", "leaf-c"}; !slices.Equal(h.m.st.Servers, want) {
		t.Fatalf("servers %q, want %q", h.m.st.Servers, want)
	}

	// The status says where each host is.
	where := map[string]string{"d0": "leaf-d", "b0": "leaf-b", "a0": "leaf-c", "n0": ""}
	for _, hs := range h.m.Status().Hosts {
		if want, ok := where[hs.ID]; ok && hs.Server != want {
			t.Errorf("status of %s: server %q, want %q", hs.ID, hs.Server, want)
		}
	}

	// A member restored from a snapshot gives the same spreads.
	m2 := New(Config{Lease: 30 * time.Second})
	if err := m2.Restore(bytes.NewReader(h.snapshot())); err != nil {
		t.Fatal(err)
	}
	for _, hs := range []struct{ host, server string }{{"a5", "leaf-c"}, {"b7", "leaf-b"}, {"d0", "leaf-d"}, {"n3", ""}} {
		if got, w := m2.reconnectSpread(m2.st.Hosts[hs.host]), h.m.reconnectSpread(h.m.st.Hosts[hs.host]); got != w {
			t.Errorf("%s after restore: %v, before %v", hs.host, got, w)
		}
	}
	if !slices.Equal(m2.ix.serverHosts, h.m.ix.serverHosts) || m2.ix.named != h.m.ix.named {
		t.Errorf("restored counts %v (%d named), want %v (%d)", m2.ix.serverHosts, m2.ix.named, h.m.ix.serverHosts, h.m.ix.named)
	}

	// A name a hello may not carry is refused, and counts nowhere.
	for _, bad := range []string{"leaf a", "leaf/a", string(make([]byte, 300))} {
		if r := h.helloThrough("x", bad); r.Error == nil || r.Error.Code != wu.CodeBadRequest {
			t.Errorf("hello through %.20q: %+v, want a bad request", bad, r.Error)
		}
	}
}

// TestRestoreMendsServerPlaces: a snapshot whose hosts name places that
// hold no server, or whose servers are named twice, restores to counts that
// agree with the hosts.
func TestRestoreMendsServerPlaces(t *testing.T) {
	h := newHarness(t)
	h.helloThrough("a", "s1")
	h.helloThrough("b", "s2")
	h.helloThrough("c", "s3")
	h.m.st.Servers = []string{"s1", "s1", ""} // b's place now repeats s1; c's holds nothing
	h.m.st.Hosts["d"] = &host{ID: "d", Server: 9}
	m2 := New(Config{Lease: 30 * time.Second})
	if err := m2.Restore(bytes.NewReader(h.snapshot())); err != nil {
		t.Fatal(err)
	}
	got := map[string]uint16{}
	for id, hs := range m2.st.Hosts {
		got[id] = hs.Server
	}
	if want := map[string]uint16{"a": 1, "b": 1, "c": 0, "d": 0}; fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("hosts' places %v, want %v", got, want)
	}
	if want := []string{"s1", "", ""}; !slices.Equal(m2.st.Servers, want) || m2.ix.serverHosts[1] != 2 || m2.ix.named != 2 {
		t.Errorf("servers %q, counts %v (%d named)", m2.st.Servers, m2.ix.serverHosts, m2.ix.named)
	}
	// A new server takes the first free place.
	h2 := &harness{t: t, m: m2, now: h.now, hs: map[string]uint64{}}
	h2.helloThrough("e", "s4")
	if want := []string{"s1", "s4", ""}; !slices.Equal(m2.st.Servers, want) {
		t.Errorf("servers %q, want %q", m2.st.Servers, want)
	}
}
