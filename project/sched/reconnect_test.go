package sched

import (
	"encoding/json"
	"strconv"
	"testing"

	wu "github.com/momonga-project/momonga/workunits"
)

// TestHelloSaysHowToSpreadReconnections: a small project's hello reply
// spreads nothing; once it has hosts by the thousand, the reply spreads a
// host's reconnections over the time the server takes to admit them all.
func TestHelloSaysHowToSpreadReconnections(t *testing.T) {
	h := newHarness(t)
	spread := func(host string) float64 {
		t.Helper()
		raw := h.apply(wu.Command{V: 1, Op: wu.OpHello, Host: host, Body: wu.Encode(wu.Hello{V: 1, Host: wu.HostInfo{Name: host, CPUs: 1}})})
		var r wu.HelloReply
		if err := json.Unmarshal(raw, &r); err != nil || r.Error != nil {
			t.Fatalf("hello: %s %v", raw, err)
		}
		return r.ReconnectSpreadSeconds
	}
	if s := spread("h0"); s != 0 {
		t.Fatalf("one host: spread %v s, want none", s)
	}
	const hosts = 2 * wu.ReconnectRate
	for i := 1; i < hosts-1; i++ {
		h.hello("h" + strconv.Itoa(i))
	}
	if s := spread("h" + strconv.Itoa(hosts-1)); s != 2 {
		t.Fatalf("%d hosts: spread %v s, want 2", hosts, s)
	}
}
