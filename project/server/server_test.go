package server

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/json"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/momonga-project/momonga/apps"
	"github.com/momonga-project/momonga/internal/wait"
	"github.com/momonga-project/momonga/project/admin"
	"github.com/momonga-project/momonga/project/sched"
	wu "github.com/momonga-project/momonga/workunits"
)

// testKey signs the apps of test servers.
var testKey = ed25519.NewKeyFromSeed(bytes.Repeat([]byte{7}, ed25519.SeedSize))

func signed(module []byte) []byte { return wu.SignApp(testKey, module).Encode() }

// startServer runs an open server whose clock never ticks after start, so
// that the applied log position moves only when a request is appended.
func startServer(t *testing.T) (*Server, *nats.Conn, *admin.Client) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	cfg := Embedded(t.TempDir(), "127.0.0.1:0")
	cfg.TickInterval, cfg.Sched = time.Hour, sched.Config{Lease: time.Minute}
	cfg.Trust = Trust{Open: true, SigningKey: testKey.Public().(ed25519.PublicKey)}
	srv, err := Start(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	nc, err := nats.Connect(srv.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	adm, err := admin.Dial(ctx, srv.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(adm.Close)
	return srv, nc, adm
}

func request(t *testing.T, nc *nats.Conn, subject string, data []byte) wu.Ack {
	t.Helper()
	msg, err := nc.Request(subject, data, 5*time.Second)
	if err != nil {
		t.Fatalf("%s: %v", subject, err)
	}
	var ack wu.Ack
	if err := json.Unmarshal(msg.Data, &ack); err != nil {
		t.Fatalf("%s: reply %q: %v", subject, msg.Data, err)
	}
	return ack
}

func blobRequest(t *testing.T, nc *nats.Conn, subject string, hdr map[string]string, data []byte) *nats.Msg {
	t.Helper()
	msg := nats.NewMsg(subject)
	for k, v := range hdr {
		msg.Header.Set(k, v)
	}
	msg.Data = data
	// Generous: a last chunk stores the whole blob, which on a loaded
	// machine was seen to take over 5 s.
	reply, err := nc.RequestMsg(msg, 30*time.Second)
	if err != nil {
		t.Fatalf("%s: %v", subject, err)
	}
	return reply
}

// stateOf is the part of the status that requests could change.
func stateOf(t *testing.T, srv *Server) string {
	st := srv.Status()
	st.Now = time.Time{}
	st.Applied = 0
	b, _ := json.Marshal(st)
	return string(b)
}

func TestStatsPageServesStatus(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cfg := Embedded(t.TempDir(), "127.0.0.1:0")
	cfg.HTTPListen, cfg.Sched = "127.0.0.1:0", sched.Config{Project: "stats-test"}
	srv, err := Start(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	for path, want := range map[string]string{"": "<h1>stats-test</h1>", "api/status": `"project":"stats-test"`} {
		body := httpGet(t, srv.StatsURL()+path)
		if !strings.Contains(body, want) {
			t.Errorf("%s: %q lacks %q", path, body, want)
		}
	}
}

// TestValidatorComparesFuzzyOutputs: two hosts return outputs that differ in
// the last digits; the app's tolerance says they agree, and only the
// validator, which reads them, can tell the scheduler so.
func TestValidatorComparesFuzzyOutputs(t *testing.T) {
	srv, nc, adm := startServer(t)
	reportFuzzyPair(t, nc, adm)
	waitUnitValid(t, adm, "f")
	for _, h := range srv.Status().Hosts {
		if h.Valid != 1 || h.Credit <= 0 {
			t.Errorf("host %s: %d valid, credit %g", h.ID, h.Valid, h.Credit)
		}
	}
}

// reportFuzzyPair publishes an app whose outputs agree within a tolerance,
// submits batch "f" of one unit with quorum 2, and has hosts h1 and h2
// compute it with outputs that differ in the last digits: only a comparison
// by the validator can make the unit valid.
func reportFuzzyPair(t *testing.T, nc *nats.Conn, adm *admin.Client) {
	t.Helper()
	ctx := context.Background()
	if _, err := adm.AddApp(ctx, "float", apps.Primes, signed(apps.Primes), wu.Policy{Replication: 2, Quorum: 2, Tolerance: wu.Tolerance{Rel: 1e-9}}); err != nil {
		t.Fatal(err)
	}
	if _, err := adm.Submit(ctx, wu.Submit{Batch: "f", App: "float", Units: []wu.UnitSpec{{Args: []string{"x"}}}}); err != nil {
		t.Fatal(err)
	}
	outputs := map[string][]byte{"h1": []byte("energy 1.0000000000001\n"), "h2": []byte("energy 1.0000000000002\n")}
	for host, out := range outputs {
		if a := request(t, nc, "vol."+host+".hello", wu.Encode(wu.Hello{V: 1, Host: wu.HostInfo{Name: host, CPUs: 1}})); a.Error != nil {
			t.Fatal(a.Error)
		}
		msg, err := nc.Request("vol."+host+".work", wu.Encode(wu.WorkRequest{V: 1, Seq: 100, Slots: 1}), 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		var work wu.WorkReply
		if err := json.Unmarshal(msg.Data, &work); err != nil || len(work.Assignments) != 1 {
			t.Fatalf("work reply %s %v", msg.Data, err)
		}
		put := blobRequest(t, nc, "vol."+host+".blob.put", map[string]string{
			wu.HeaderHash: string(wu.HashOf(out)), wu.HeaderSize: strconv.Itoa(len(out)), wu.HeaderOffset: "0"}, out)
		if put.Header.Get(wu.HeaderError) != "" {
			t.Fatal(put.Header.Get(wu.HeaderError))
		}
		report := wu.Report{V: 1, Seq: 101, Task: work.Assignments[0].Task, Outcome: wu.OutcomeSuccess, Output: wu.HashOf(out), OutputSize: int64(len(out)), CPUSeconds: 1}
		if a := request(t, nc, "vol."+host+".result", wu.Encode(report)); a.Error != nil {
			t.Fatal(a.Error)
		}
	}
}

// waitUnitValid waits up to 10 s for the first unit of batch to be valid.
func waitUnitValid(t *testing.T, adm *admin.Client, batch string) {
	t.Helper()
	wait.For(t, 10*time.Second, "the unit to be valid", func() bool {
		res, err := adm.Results(context.Background(), batch)
		if err != nil {
			t.Fatal(err)
		}
		return res.Units[0].State == wu.WorkUnitValid
	})
}

// The validator runs where the scheduler's lease is: when a joined
// process's member holds it, that process compares the outputs.
func TestValidatorRunsWhereTheLeaseIs(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	timing := func(cfg Config) Config {
		// A lapse long enough that a loaded machine does not move the lease
		// while the test looks at who compares.
		cfg.Heartbeat, cfg.Lapse, cfg.TickInterval = 200*time.Millisecond, time.Second, 100*time.Millisecond
		return cfg
	}
	cfg := timing(Embedded(t.TempDir(), "127.0.0.1:0"))
	cfg.Sched, cfg.Members = sched.Config{Lease: time.Minute}, 2
	cfg.Trust = Trust{Open: true, SigningKey: testKey.Public().(ed25519.PublicKey)}
	srv, err := Start(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	spare, err := Start(ctx, timing(Joining(srv.ClientURL())))
	if err != nil {
		t.Fatal(err)
	}
	defer spare.Close()
	// Kill the serving process's lease holder until the joined process's
	// member holds the lease; the serving process keeps (or takes again)
	// the other slot, so that its gateway can answer queries.
	wait.For(t, time.Until(deadline(ctx)), "the joined process to hold the lease", func() bool {
		for _, m := range srv.Group().Members() {
			if m.Status().Leading {
				srv.Group().Kill(m.ID())
			}
		}
		return spare.Group().Leading() && hasReadyMember(srv)
	})
	nc, err := nats.Connect(srv.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	adm, err := admin.Dial(ctx, srv.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	defer adm.Close()
	reportFuzzyPair(t, nc, adm)
	waitUnitValid(t, adm, "f")
	if srv.Group().Leading() || !spare.Group().Leading() {
		t.Errorf("the lease moved during the test (serving process leading %v, joined %v)", srv.Group().Leading(), spare.Group().Leading())
	}
}

func hasReadyMember(s *Server) bool {
	for _, m := range s.Group().Members() {
		select {
		case <-m.Ready():
			return true
		default:
		}
	}
	return false
}
