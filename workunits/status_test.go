package workunits

import (
	"encoding/json"
	"fmt"
	"testing"
	"time"
)

// TestStatusCutToFitAMessage: the status of a project of 20,000 hosts is
// larger than a NATS message; the reply keeps the hosts seen most recently,
// in their order, and says how many there are.
func TestStatusCutToFitAMessage(t *testing.T) {
	t0 := time.Date(2026, 12, 7, 0, 0, 0, 0, time.UTC)
	st := StatusReply{V: 1, Project: "p"}
	for i := range 20_000 {
		// Hosts seen in an order unlike their ids'.
		seen := t0.Add(time.Duration((i*7919)%20_000) * time.Second)
		st.Hosts = append(st.Hosts, HostStatus{ID: fmt.Sprintf("h%05d", i), Info: HostInfo{Name: "a host with a long enough name", OS: "linux"}, LastSeen: seen})
	}
	for i := range 3000 {
		st.Users = append(st.Users, UserStatus{Name: fmt.Sprintf("user-%d", i)})
	}
	if b := Encode(st); len(b) <= MaxStatusBytes {
		t.Fatalf("the whole status is %d bytes: the test needs more hosts", len(b))
	}
	b := EncodeStatus(st, MaxStatusBytes)
	if len(b) > MaxStatusBytes {
		t.Fatalf("cut status of %d bytes, over %d", len(b), MaxStatusBytes)
	}
	var got StatusReply
	if err := json.Unmarshal(b, &got); err != nil {
		t.Fatal(err)
	}
	if got.HostsTotal != 20_000 || got.UsersTotal != 3000 || len(got.Hosts) == 0 || len(got.Hosts) >= 20_000 {
		t.Fatalf("kept %d hosts of %d, %d users of %d", len(got.Hosts), got.HostsTotal, len(got.Users), got.UsersTotal)
	}
	oldest := t0.Add(time.Duration(20_000-len(got.Hosts)) * time.Second)
	for i, h := range got.Hosts {
		if h.LastSeen.Before(oldest) {
			t.Fatalf("kept %s, last seen %v, before %v: not among the most recent", h.ID, h.LastSeen, oldest)
		}
		if i > 0 && h.ID <= got.Hosts[i-1].ID {
			t.Fatalf("hosts out of their order: %s after %s", h.ID, got.Hosts[i-1].ID)
		}
	}
	// A small status is sent whole, without totals.
	small := StatusReply{V: 1, Hosts: st.Hosts[:10]}
	if b := EncodeStatus(small, MaxStatusBytes); string(b) != string(Encode(small)) {
		t.Fatalf("a small status was changed: %s", b)
	}
}
