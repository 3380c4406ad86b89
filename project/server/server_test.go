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
	srv, err := Start(ctx, Config{DataDir: t.TempDir(), NATSListen: "127.0.0.1:0", TickInterval: time.Hour,
		Sched: sched.Config{Lease: time.Minute}, Trust: Trust{Open: true, SigningKey: testKey.Public().(ed25519.PublicKey)}})
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
	reply, err := nc.RequestMsg(msg, 5*time.Second)
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

func TestGatewayRefusesBadInputAndChangesNothing(t *testing.T) {
	srv, nc, adm := startServer(t)
	ctx := context.Background()
	if _, err := adm.AddApp(ctx, "primes", apps.Primes, signed(apps.Primes), wu.Policy{}); err != nil {
		t.Fatal(err)
	}
	if _, err := adm.Submit(ctx, wu.Submit{Batch: "b", App: "primes", Replication: 1, Quorum: 1, Units: []wu.UnitSpec{{Args: []string{"0", "10"}}}}); err != nil {
		t.Fatal(err)
	}
	if a := request(t, nc, "vol.h1.hello", wu.Encode(wu.Hello{V: 1, Host: wu.HostInfo{Name: "one", CPUs: 1}})); a.Error != nil {
		t.Fatal(a.Error)
	}
	if a := request(t, nc, "vol.h2.hello", wu.Encode(wu.Hello{V: 1, Host: wu.HostInfo{Name: "two", CPUs: 1}})); a.Error != nil {
		t.Fatal(a.Error)
	}
	msg, err := nc.Request("vol.h1.work", wu.Encode(wu.WorkRequest{V: 1, Seq: 100, Slots: 1}), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	var work wu.WorkReply
	if err := json.Unmarshal(msg.Data, &work); err != nil || len(work.Assignments) != 1 {
		t.Fatalf("work reply %s %v", msg.Data, err)
	}
	task := work.Assignments[0].Task

	junk, err := adm.PutBlob(ctx, []byte("not wasm!"))
	if err != nil {
		t.Fatal(err)
	}
	before, applied := stateOf(t, srv), srv.Status().Applied
	huge := []byte(`{"v":1,"seq":1,"slots":1,"x":"` + strings.Repeat("a", wu.MaxMessageBytes) + `"}`)
	output := []byte("4\n")
	cases := []struct {
		name, subject string
		data          []byte
		code          string
	}{
		{"malformed json", "vol.h1.work", []byte("{not json"), wu.CodeBadRequest},
		{"wrong field type", "vol.h1.work", []byte(`{"seq":"x","slots":1}`), wu.CodeBadRequest},
		{"oversized", "vol.h1.work", huge, wu.CodeTooLarge},
		{"unknown op", "vol.h1.explode", []byte(`{}`), wu.CodeBadRequest},
		{"no seq", "vol.h1.beat", []byte(`{"tasks":[]}`), wu.CodeBadRequest},
		{"result for output never uploaded", "vol.h1.result",
			wu.Encode(wu.Report{V: 1, Seq: 101, Task: task, Outcome: wu.OutcomeSuccess, Output: wu.HashOf(output), OutputSize: 2}), wu.CodeNotFound},
		{"admin op on the admin subject that is not one", wu.SubjectAdminCommand, wu.Encode(wu.Command{V: 1, Op: wu.OpWork, Host: "adm:x", Seq: 1}), wu.CodeBadRequest},
		{"app whose module is not wasm", wu.SubjectAdminCommand,
			wu.Encode(wu.Command{V: 1, Op: wu.OpAddApp, Host: "adm:x", Seq: 2, Body: wu.Encode(wu.AddApp{V: 1, Name: "junk", Hash: junk, Size: 9, Signature: string(signed([]byte("not wasm!")))})}), wu.CodeBadRequest},
		{"app whose module was never stored", wu.SubjectAdminCommand,
			wu.Encode(wu.Command{V: 1, Op: wu.OpAddApp, Host: "adm:x", Seq: 1, Body: wu.Encode(wu.AddApp{V: 1, Name: "ghost", Hash: wu.HashOf([]byte("ghost")), Size: 5, Signature: string(signed([]byte("ghost")))})}), wu.CodeNotFound},
		{"unsigned app", wu.SubjectAdminCommand,
			wu.Encode(wu.Command{V: 1, Op: wu.OpAddApp, Host: "adm:x", Seq: 2, Body: wu.Encode(wu.AddApp{V: 1, Name: "p2", Hash: wu.HashOf(apps.Primes), Size: int64(len(apps.Primes))})}), wu.CodeBadRequest},
		{"app signed by another key", wu.SubjectAdminCommand,
			wu.Encode(wu.Command{V: 1, Op: wu.OpAddApp, Host: "adm:x", Seq: 3, Body: wu.Encode(wu.AddApp{V: 1, Name: "p2", Hash: wu.HashOf(apps.Primes), Size: int64(len(apps.Primes)),
				Signature: string(wu.SignApp(ed25519.NewKeyFromSeed(bytes.Repeat([]byte{8}, 32)), apps.Primes).Encode())})}), wu.CodeBadRequest},
		{"app whose signature is for another module", wu.SubjectAdminCommand,
			wu.Encode(wu.Command{V: 1, Op: wu.OpAddApp, Host: "adm:x", Seq: 4, Body: wu.Encode(wu.AddApp{V: 1, Name: "p2", Hash: wu.HashOf(apps.Primes), Size: int64(len(apps.Primes)), Signature: string(signed(apps.Mandel))})}), wu.CodeBadRequest},
	}
	for _, c := range cases {
		a := request(t, nc, c.subject, c.data)
		if a.Error == nil || a.Error.Code != c.code || a.Error.Message == "" {
			t.Errorf("%s: got %+v, want code %s", c.name, a.Error, c.code)
		}
	}
	if got := srv.Status().Applied; got != applied {
		t.Errorf("refused requests reached the log: applied %d → %d", applied, got)
	}

	// An upload whose content does not match its declared hash is refused.
	wrong := blobRequest(t, nc, "vol.h1.blob.put", map[string]string{
		wu.HeaderHash: string(wu.HashOf(output)), wu.HeaderSize: "2", wu.HeaderOffset: "0"}, []byte("5\n"))
	if e := wu.ParseHeaderError(wrong.Header.Get(wu.HeaderError)); e == nil || e.Code != wu.CodeBadRequest || !strings.Contains(e.Message, "hashes to") {
		t.Errorf("mismatched upload: %+v", e)
	}
	for name, hdr := range map[string]map[string]string{
		"unknown blob":  {wu.HeaderHash: string(wu.HashOf([]byte("nothing"))), wu.HeaderOffset: "0"},
		"bad hash":      {wu.HeaderHash: "../../etc/passwd", wu.HeaderOffset: "0"},
		"no offset":     {wu.HeaderHash: string(wu.HashOf(apps.Primes))},
		"offset beyond": {wu.HeaderHash: string(wu.HashOf(apps.Primes)), wu.HeaderOffset: strconv.Itoa(len(apps.Primes) + 1)},
	} {
		r := blobRequest(t, nc, "vol.h1.blob.get", hdr, nil)
		if r.Header.Get(wu.HeaderError) == "" || len(r.Data) != 0 {
			t.Errorf("%s: blob get answered %d bytes, error %q", name, len(r.Data), r.Header.Get(wu.HeaderError))
		}
	}
	oversize := blobRequest(t, nc, "vol.h1.blob.put", map[string]string{
		wu.HeaderHash: string(wu.HashOf(output)), wu.HeaderSize: strconv.Itoa(wu.MaxOutputBytes + 1), wu.HeaderOffset: "0"}, output)
	if e := wu.ParseHeaderError(oversize.Header.Get(wu.HeaderError)); e == nil || e.Code != wu.CodeTooLarge {
		t.Errorf("oversized upload: %+v", e)
	}

	// Now upload the output properly: a report from a host that does not
	// hold the task is refused; the holder's is taken.
	ok := blobRequest(t, nc, "vol.h2.blob.put", map[string]string{
		wu.HeaderHash: string(wu.HashOf(output)), wu.HeaderSize: "2", wu.HeaderOffset: "0"}, output)
	if ok.Header.Get(wu.HeaderError) != "" || ok.Header.Get(wu.HeaderDone) != "2" {
		t.Fatalf("upload: %v", ok.Header)
	}
	report := wu.Report{V: 1, Seq: 7, Task: task, Outcome: wu.OutcomeSuccess, Output: wu.HashOf(output), OutputSize: 2}
	if a := request(t, nc, "vol.h2.result", wu.Encode(report)); a.Error == nil || a.Error.Code != wu.CodeNotAssigned {
		t.Fatalf("report by a host that does not hold the task: %+v", a.Error)
	}
	if after := stateOf(t, srv); after != before {
		t.Fatalf("refused requests changed the state:\n%s\n%s", before, after)
	}
	report.Seq = 101
	if a := request(t, nc, "vol.h1.result", wu.Encode(report)); a.Error != nil {
		t.Fatalf("holder's report: %v", a.Error)
	}
	res, err := adm.Results(ctx, "b")
	if err != nil || len(res.Units) != 1 || res.Units[0].State != wu.WorkUnitValid || res.Units[0].Output != wu.HashOf(output) {
		t.Fatalf("results %+v %v", res, err)
	}
	got, err := adm.Blob(ctx, res.Units[0].Output)
	if err != nil || string(got) != "4\n" {
		t.Fatalf("canonical output %q %v", got, err)
	}
}

func TestStatsPageServesStatus(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	srv, err := Start(ctx, Config{DataDir: t.TempDir(), NATSListen: "127.0.0.1:0", HTTPListen: "127.0.0.1:0", Sched: sched.Config{Project: "stats-test"}})
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
	ctx := context.Background()
	deadline := time.Now().Add(10 * time.Second)
	for {
		res, err := adm.Results(ctx, batch)
		if err != nil {
			t.Fatal(err)
		}
		if res.Units[0].State == wu.WorkUnitValid {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("unit still %s after 10 s", res.Units[0].State)
		}
		time.Sleep(10 * time.Millisecond) // polling with a deadline
	}
}

// The validator runs where the scheduler's lease is: when a joined
// process's member holds it, that process compares the outputs.
func TestValidatorRunsWhereTheLeaseIs(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	timing := Config{Heartbeat: 100 * time.Millisecond, Lapse: 300 * time.Millisecond, TickInterval: 100 * time.Millisecond}
	cfg := timing
	cfg.DataDir, cfg.NATSListen, cfg.Sched, cfg.Members = t.TempDir(), "127.0.0.1:0", sched.Config{Lease: time.Minute}, 2
	cfg.Trust = Trust{Open: true, SigningKey: testKey.Public().(ed25519.PublicKey)}
	srv, err := Start(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	jcfg := timing
	jcfg.Join, jcfg.Members = srv.ClientURL(), 1
	spare, err := Start(ctx, jcfg)
	if err != nil {
		t.Fatal(err)
	}
	defer spare.Close()
	// Kill the serving process's lease holder until the joined process's
	// member holds the lease; the serving process keeps (or takes again)
	// the other slot, so that its gateway can answer queries.
	for !spare.Group().Leading() || !hasReadyMember(srv) {
		if ctx.Err() != nil {
			t.Fatal("the joined process never held the lease")
		}
		for _, m := range srv.Group().Members() {
			if m.Status().Leading {
				srv.Group().Kill(m.ID())
			}
		}
		time.Sleep(20 * time.Millisecond) // polling the group
	}
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
