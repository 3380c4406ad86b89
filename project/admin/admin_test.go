package admin

import (
	"context"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	natsserver "github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/momonga-project/momonga/apps"
	"github.com/momonga-project/momonga/project/blobs"
	wu "github.com/momonga-project/momonga/workunits"
)

// startNATS starts a NATS server with JetStream on a free loopback port,
// stopped when the test ends; opts may change its options first.
func startNATS(t *testing.T, opts ...func(*natsserver.Options)) *natsserver.Server {
	t.Helper()
	o := &natsserver.Options{Host: "127.0.0.1", Port: natsserver.RANDOM_PORT, JetStream: true, StoreDir: t.TempDir(), NoSigs: true, NoLog: true}
	for _, f := range opts {
		f(o)
	}
	ns, err := natsserver.NewServer(o)
	if err != nil {
		t.Fatal(err)
	}
	go ns.Start()
	if !ns.ReadyForConnections(10 * time.Second) {
		t.Fatal("nats server not ready")
	}
	t.Cleanup(func() { ns.Shutdown(); ns.WaitForShutdown() })
	return ns
}

// fakeProject answers the admin subjects as the project's server does, with
// replies the test sets, and records the commands it receives.
type fakeProject struct {
	t     *testing.T
	nc    *nats.Conn
	store *blobs.Store

	mu       sync.Mutex
	commands []wu.Command
	// reply answers a command; nil answers an empty Ack. Returning nil
	// leaves the request unanswered.
	reply func(cmd wu.Command, n int) any
}

// startProject is a NATS server with the project's blob store and a
// fakeProject answering on it.
func startProject(t *testing.T) (*fakeProject, string) {
	t.Helper()
	ns := startNATS(t)
	nc, err := nats.Connect(ns.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	store, err := blobs.Open(context.Background(), js, blobs.Bucket, 1)
	if err != nil {
		t.Fatal(err)
	}
	p := &fakeProject{t: t, nc: nc, store: store}
	if _, err := nc.Subscribe(wu.SubjectAdminCommand, p.onCommand); err != nil {
		t.Fatal(err)
	}
	return p, ns.ClientURL()
}

func (p *fakeProject) onCommand(m *nats.Msg) {
	var cmd wu.Command
	if err := json.Unmarshal(m.Data, &cmd); err != nil {
		p.t.Errorf("undecodable command %q: %v", m.Data, err)
		return
	}
	p.mu.Lock()
	p.commands = append(p.commands, cmd)
	n, reply := len(p.commands), p.reply
	p.mu.Unlock()
	var out any = wu.Ack{V: wu.WireVersion}
	if reply != nil {
		if out = reply(cmd, n); out == nil {
			return
		}
	}
	_ = m.Respond(wu.Encode(out))
}

func (p *fakeProject) setReply(f func(cmd wu.Command, n int) any) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.reply = f
}

func (p *fakeProject) received() []wu.Command {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]wu.Command(nil), p.commands...)
}

// answer serves subject with the replies of f, given the request's body.
func (p *fakeProject) answer(subject string, f func(body []byte) any) {
	p.t.Helper()
	if _, err := p.nc.Subscribe(subject, func(m *nats.Msg) { _ = m.Respond(wu.Encode(f(m.Data))) }); err != nil {
		p.t.Fatal(err)
	}
	if err := p.nc.Flush(); err != nil {
		p.t.Fatal(err)
	}
}

func dial(t *testing.T, url string) *Client {
	t.Helper()
	c, err := Dial(context.Background(), url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c
}

func decodeBody[T any](t *testing.T, cmd wu.Command) T {
	t.Helper()
	var v T
	if err := json.Unmarshal(cmd.Body, &v); err != nil {
		t.Fatalf("body of %s: %v", cmd.Op, err)
	}
	return v
}

func signingKey() ed25519.PrivateKey {
	return ed25519.NewKeyFromSeed(make([]byte, ed25519.SeedSize))
}

// signedPrimes is the primes module as AddApp publishes it, and its
// signature.
func signedPrimes(t *testing.T) (module, signature []byte) {
	t.Helper()
	module, err := wu.PrepareModule(apps.Primes)
	if err != nil {
		t.Fatal(err)
	}
	return module, wu.SignApp(signingKey(), module).Encode()
}

func TestDialSaysWhatIsMissing(t *testing.T) {
	ctx := context.Background()
	// Nothing listening.
	ns := startNATS(t)
	url := ns.ClientURL()
	ns.Shutdown()
	ns.WaitForShutdown()
	if _, err := Dial(ctx, url); err == nil || !strings.Contains(err.Error(), "is `momonga-project serve` running?") {
		t.Errorf("dial with no server: %v", err)
	}
	// A server that wants credentials.
	secured := startNATS(t, func(o *natsserver.Options) { o.Username, o.Password = "admin", "secret" })
	if _, err := Dial(ctx, secured.ClientURL()); !errors.Is(err, nats.ErrAuthorization) || !strings.Contains(err.Error(), "--creds") {
		t.Errorf("dial without credentials: %v, want an authorization error naming --creds", err)
	}
	if c, err := Dial(ctx, secured.ClientURL(), nats.UserInfo("admin", "secret")); err == nil {
		c.Close()
		t.Error("dialled a server with no blob store")
	} else if !strings.Contains(err.Error(), "start `momonga-project serve` first") {
		t.Errorf("dial a server with no blob store: %v", err)
	}
}

func TestAddAppStoresThePreparedModuleAndRecordsTheApp(t *testing.T) {
	p, url := startProject(t)
	c := dial(t, url)
	ctx := context.Background()
	module, sig := signedPrimes(t)
	policy := wu.Policy{Replication: 3, Quorum: 2, Tolerance: wu.Tolerance{Rel: 1e-9}}
	app, err := c.AddApp(ctx, "primes", apps.Primes, sig, policy)
	if err != nil {
		t.Fatal(err)
	}
	if app.Name != "primes" || app.Hash != wu.HashOf(module) || app.Size != int64(len(module)) || app.Policy != policy {
		t.Errorf("app %+v", app)
	}
	if b, err := c.Blob(ctx, app.Hash); err != nil || wu.HashOf(b) != app.Hash {
		t.Errorf("the module in the blob store: %d bytes, %v", len(b), err)
	}
	cmds := p.received()
	if len(cmds) != 1 || cmds[0].Op != wu.OpAddApp {
		t.Fatalf("commands %+v, want one %s", cmds, wu.OpAddApp)
	}
	add := decodeBody[wu.AddApp](t, cmds[0])
	if add.Name != "primes" || add.Hash != app.Hash || add.Size != app.Size || add.Signature != string(sig) || add.Policy != policy {
		t.Errorf("add app command %+v", add)
	}
}

func TestAddAppRefusesBadNamesAndSignaturesBeforeSendingAnything(t *testing.T) {
	p, url := startProject(t)
	c := dial(t, url)
	ctx := context.Background()
	module, sig := signedPrimes(t)
	if _, err := c.AddApp(ctx, "no spaces", module, sig, wu.Policy{}); wu.ErrorCode(err) != wu.CodeBadRequest {
		t.Errorf("a name with a space: %v", err)
	}
	other := wu.SignApp(signingKey(), append([]byte(nil), apps.Mandel...)).Encode()
	if _, err := c.AddApp(ctx, "primes", module, other, wu.Policy{}); err == nil || !strings.Contains(err.Error(), "signature of primes") {
		t.Errorf("the signature of another module: %v", err)
	}
	if _, err := c.AddApp(ctx, "primes", module, []byte("not a manifest"), wu.Policy{}); wu.ErrorCode(err) != wu.CodeBadRequest {
		t.Errorf("a malformed signature: %v", err)
	}
	if _, err := c.AddApp(ctx, "primes", []byte("not wasm"), sig, wu.Policy{}); err == nil {
		t.Error("a module that is not WebAssembly was accepted")
	}
	if cmds := p.received(); len(cmds) != 0 {
		t.Errorf("commands sent for refused apps: %+v", cmds)
	}
}

// TestSubmitInChunks: a large submission goes in commands of submitChunk
// units, numbered in order, and the ids of every chunk come back in order.
func TestSubmitInChunks(t *testing.T) {
	p, url := startProject(t)
	c := dial(t, url)
	p.setReply(func(cmd wu.Command, n int) any {
		var s wu.Submit
		if err := json.Unmarshal(cmd.Body, &s); err != nil {
			return wu.Ack{V: wu.WireVersion, Error: wu.Errorf(wu.CodeBadRequest, "%v", err)}
		}
		ids := make([]string, len(s.Units))
		for i, u := range s.Units {
			ids[i] = "wu-" + u.Name
		}
		return wu.SubmitReply{V: wu.WireVersion, Batch: s.Batch, Units: ids}
	})
	sub := wu.Submit{App: "primes", Batch: "b", Replication: 2, Quorum: 2}
	for i := range 2*submitChunk + 500 {
		sub.Units = append(sub.Units, wu.UnitSpec{Name: fmt.Sprintf("u%04d", i)})
	}
	ids, err := c.Submit(context.Background(), sub)
	if err != nil {
		t.Fatal(err)
	}
	if len(ids) != len(sub.Units) || ids[0] != "wu-u0000" || ids[len(ids)-1] != fmt.Sprintf("wu-u%04d", len(ids)-1) {
		t.Errorf("%d ids, from %q to %q", len(ids), ids[0], ids[len(ids)-1])
	}
	cmds := p.received()
	if len(cmds) != 3 {
		t.Fatalf("%d commands, want 3", len(cmds))
	}
	for i, cmd := range cmds {
		s := decodeBody[wu.Submit](t, cmd)
		want := []int{submitChunk, submitChunk, 500}[i]
		if cmd.Op != wu.OpSubmit || cmd.Seq != uint64(i+1) || cmd.Host != cmds[0].Host || len(s.Units) != want || s.V != wu.WireVersion || s.Batch != "b" || s.Replication != 2 {
			t.Errorf("command %d: op %s seq %d host %s, %d units %+v", i, cmd.Op, cmd.Seq, cmd.Host, len(s.Units), s.Units[:1])
		}
	}

	// A refused chunk stops the submission, with the ids accepted so far.
	p.setReply(func(cmd wu.Command, n int) any {
		if n == 5 {
			return wu.Ack{V: wu.WireVersion, Error: wu.Errorf(wu.CodeBadRequest, "batch b is full")}
		}
		return wu.SubmitReply{V: wu.WireVersion, Units: make([]string, submitChunk)}
	})
	ids, err = c.Submit(context.Background(), sub)
	if wu.ErrorCode(err) != wu.CodeBadRequest || !strings.Contains(err.Error(), "batch b is full") || len(ids) != submitChunk {
		t.Errorf("refused second chunk: %d ids, %v", len(ids), err)
	}
}

// TestRetriedCommandKeepsItsNumber: a command that gets no answer is sent
// again with the same sequence number, so the scheduler applies it once.
func TestRetriedCommandKeepsItsNumber(t *testing.T) {
	p, url := startProject(t)
	c := dial(t, url)
	c.Timeout = 100 * time.Millisecond
	p.setReply(func(cmd wu.Command, n int) any {
		if n == 1 {
			return nil // lost
		}
		return wu.Ack{V: wu.WireVersion}
	})
	if err := c.JoinTeam(context.Background(), "u1", "t1"); err != nil {
		t.Fatal(err)
	}
	if err := c.RevokeHost(context.Background(), "h1"); err != nil {
		t.Fatal(err)
	}
	cmds := p.received()
	if len(cmds) != 3 {
		t.Fatalf("%d commands, want the first twice and the second once: %+v", len(cmds), cmds)
	}
	if cmds[0].Seq != 1 || cmds[1].Seq != 1 || cmds[2].Seq != 2 || string(cmds[0].Body) != string(cmds[1].Body) {
		t.Errorf("sequence numbers %d %d %d", cmds[0].Seq, cmds[1].Seq, cmds[2].Seq)
	}
	if j := decodeBody[wu.TeamJoin](t, cmds[0]); cmds[0].Op != wu.OpTeamJoin || j.User != "u1" || j.Team != "t1" {
		t.Errorf("join team: %s %+v", cmds[0].Op, j)
	}
	if r := decodeBody[wu.HostRevoke](t, cmds[2]); cmds[2].Op != wu.OpHostRevoke || r.Host != "h1" {
		t.Errorf("revoke host: %s %+v", cmds[2].Op, r)
	}

	// Nobody answering at all: the command fails after its retries.
	p.setReply(func(wu.Command, int) any { return nil })
	c.Retries = 2
	err := c.RevokeHost(context.Background(), "h2")
	if err == nil || !strings.Contains(err.Error(), "the project did not answer") {
		t.Errorf("no answer: %v", err)
	}
	if n := len(p.received()); n != 3+3 {
		t.Errorf("%d attempts, want 3", n-3)
	}
}

func TestAccountsCommands(t *testing.T) {
	p, url := startProject(t)
	c := dial(t, url)
	ctx := context.Background()
	p.setReply(func(cmd wu.Command, n int) any { return wu.CreatedReply{V: wu.WireVersion, ID: fmt.Sprintf("id%d", n)} })

	id, key, err := c.AddUser(ctx, "ann", "ann@example.org", "t1")
	if err != nil || id != "id1" {
		t.Fatalf("add user: %q, %v", id, err)
	}
	u := decodeBody[wu.UserAdd](t, p.received()[0])
	if u.Name != "ann" || u.Email != "ann@example.org" || u.Team != "t1" || u.KeyHash != wu.AccountKeyHash(key) {
		t.Errorf("add user command %+v for key %q", u, key)
	}
	if strings.Contains(string(p.received()[0].Body), key) {
		t.Error("the account key itself was sent to the project")
	}
	_, key2, err := c.AddUser(ctx, "bob", "", "")
	if err != nil || key2 == key {
		t.Errorf("second user's key %q (first %q), %v", key2, key, err)
	}

	id, err = c.AddTeam(ctx, "team", "id1")
	if tm := decodeBody[wu.TeamAdd](t, p.received()[2]); err != nil || id != "id3" || tm.Name != "team" || tm.Founder != "id1" {
		t.Errorf("add team: %q %v, command %+v", id, err, tm)
	}

	// Refusals come back as the project's coded errors.
	p.setReply(func(wu.Command, int) any {
		return wu.Ack{V: wu.WireVersion, Error: wu.Errorf(wu.CodeNotFound, "no user zed")}
	})
	if err := c.JoinTeam(ctx, "zed", "team"); wu.ErrorCode(err) != wu.CodeNotFound {
		t.Errorf("join team of an unknown user: %v", err)
	}

	want := wu.AccountsReply{V: wu.WireVersion, Users: []wu.UserStatus{{ID: "id1", Name: "ann", Email: "ann@example.org"}}, Teams: []wu.TeamStatus{{ID: "id3", Name: "team"}}}
	p.answer(wu.SubjectAdminAccounts, func([]byte) any { return want })
	got, err := c.Accounts(ctx)
	if err != nil || len(got.Users) != 1 || got.Users[0].Email != "ann@example.org" || len(got.Teams) != 1 || got.Teams[0].Name != "team" {
		t.Errorf("accounts %+v, %v", got, err)
	}
}

func TestNewAccountKey(t *testing.T) {
	seen := map[string]bool{}
	for range 100 {
		k, err := NewAccountKey()
		if err != nil {
			t.Fatal(err)
		}
		if len(k) != 32 || strings.Trim(k, "0123456789abcdef") != "" || seen[k] {
			t.Fatalf("key %q: want 32 new hex digits", k)
		}
		seen[k] = true
	}
}

// TestResultsReadsEveryPage: the project lists a batch's units a page at a
// time; Results asks from each page's Next until it is 0.
func TestResultsReadsEveryPage(t *testing.T) {
	p, url := startProject(t)
	c := dial(t, url)
	const total = 2*wu.ResultsPage + 10
	var mu sync.Mutex
	var offsets []int
	p.answer(wu.SubjectAdminResults, func(body []byte) any {
		var q wu.ResultsQuery
		if err := json.Unmarshal(body, &q); err != nil || q.Batch != "b" {
			return wu.Ack{V: wu.WireVersion, Error: wu.Errorf(wu.CodeBadRequest, "query %q", body)}
		}
		mu.Lock()
		offsets = append(offsets, q.Offset)
		mu.Unlock()
		rep := wu.ResultsReply{V: wu.WireVersion, Batch: "b", App: "primes", Total: total}
		for i := q.Offset; i < min(q.Offset+wu.ResultsPage, total); i++ {
			rep.Units = append(rep.Units, wu.UnitResult{ID: fmt.Sprintf("u%d", i)})
		}
		if end := q.Offset + wu.ResultsPage; end < total {
			rep.Next = end
		}
		return rep
	})
	got, err := c.Results(context.Background(), "b")
	if err != nil {
		t.Fatal(err)
	}
	if len(got.Units) != total || got.Units[total-1].ID != fmt.Sprintf("u%d", total-1) || got.Total != total || got.Next != 0 || got.App != "primes" {
		t.Errorf("%d units (last %+v), total %d, next %d", len(got.Units), got.Units[len(got.Units)-1], got.Total, got.Next)
	}
	if fmt.Sprint(offsets) != fmt.Sprint([]int{0, wu.ResultsPage, 2 * wu.ResultsPage}) {
		t.Errorf("pages asked from %v", offsets)
	}

	p2, url2 := startProject(t)
	p2.answer(wu.SubjectAdminResults, func([]byte) any {
		return wu.Ack{V: wu.WireVersion, Error: wu.Errorf(wu.CodeNotFound, "no batch b")}
	})
	if _, err := dial(t, url2).Results(context.Background(), "b"); wu.ErrorCode(err) != wu.CodeNotFound {
		t.Errorf("results of an unknown batch: %v", err)
	}
}

func TestStatusAndMalformedReplies(t *testing.T) {
	p, url := startProject(t)
	c := dial(t, url)
	p.answer(wu.SubjectAdminStatus, func([]byte) any {
		return wu.StatusReply{V: wu.WireVersion, Project: "test", Applied: 42}
	})
	st, err := c.Status(context.Background())
	if err != nil || st.Project != "test" || st.Applied != 42 {
		t.Errorf("status %+v, %v", st, err)
	}

	p.setReply(func(wu.Command, int) any { return json.RawMessage(`{"v":1,"units":"not a list"}`) })
	if _, err := c.Submit(context.Background(), wu.Submit{Units: []wu.UnitSpec{{}}}); err == nil || !strings.Contains(err.Error(), "malformed reply") {
		t.Errorf("a reply of the wrong shape: %v", err)
	}
	p.setReply(func(wu.Command, int) any { return json.RawMessage(`"ack"`) })
	if err := c.RevokeHost(context.Background(), "h"); err == nil || !strings.Contains(err.Error(), "malformed reply") {
		t.Errorf("a reply that is not an object: %v", err)
	}
}
