package gateway

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/momonga-project/momonga/apps"
	"github.com/momonga-project/momonga/project/blobs"
	"github.com/momonga-project/momonga/project/sched"
	"github.com/momonga-project/momonga/project/sched/schedtest"
	"github.com/momonga-project/momonga/vpeer"
	"github.com/momonga-project/momonga/vpeer/vpeertest"
	wu "github.com/momonga-project/momonga/workunits"
)

// testKey signs the apps of the tests' projects.
var testKey = ed25519.NewKeyFromSeed(bytes.Repeat([]byte{7}, ed25519.SeedSize))

func signed(module []byte) []byte { return wu.SignApp(testKey, module).Encode() }

// router carries replies to in-process requesters: the members' (a
// vpeer.MemberConfig.Reply) and the gateway's own (a Publisher). Each
// inbox keeps the first reply, as a NATS requester does.
type router struct {
	mu    sync.Mutex
	next  int
	boxes map[string]chan *nats.Msg
}

func (r *router) inbox() (string, chan *nats.Msg) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.boxes == nil {
		r.boxes = map[string]chan *nats.Msg{}
	}
	r.next++
	s := "_INBOX.gw." + strconv.Itoa(r.next)
	c := make(chan *nats.Msg, 1)
	r.boxes[s] = c
	return s, c
}

func (r *router) forget(s string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	delete(r.boxes, s)
}

func (r *router) PublishMsg(m *nats.Msg) error {
	r.mu.Lock()
	c := r.boxes[m.Subject]
	r.mu.Unlock()
	if c != nil {
		select {
		case c <- m:
		default:
		}
	}
	return nil
}

func (r *router) reply(subject string, data []byte) error {
	return r.PublishMsg(&nats.Msg{Subject: subject, Data: bytes.Clone(data)})
}

// rig is a gateway over scheduler members on an in-memory log and a blob
// store in memory.
type rig struct {
	t      testing.TB
	peer   *schedtest.Peer
	blobs  *blobs.Mem
	router *router
	gw     *Gateway
}

// rigConfig changes a rig: how many members, and a log between the
// gateway and the members'.
type rigConfig struct {
	members int
	log     func(*schedtest.Peer, *router) Log
	limiter Limiter
	onFlood func(string)
}

func newRig(t testing.TB, rc rigConfig) *rig {
	r := &rig{t: t, blobs: &blobs.Mem{}, router: &router{}}
	r.peer = schedtest.Start(t, schedtest.Config{Sched: sched.Config{Lease: time.Hour}, Members: rc.members, Reply: r.router.reply})
	var log Log = r.peer
	if rc.log != nil {
		log = rc.log(r.peer, r.router)
	}
	r.gw = New(Config{
		Log: log, Blobs: r.blobs, Uploads: blobs.MemUploads{Store: r.blobs, MaxBytes: wu.MaxOutputBytes},
		Reads: peerReads{r.peer}, Publish: r.router, SigningKey: testKey.Public().(ed25519.PublicKey),
		Limiter: rc.limiter, OnFlood: rc.onFlood, Logger: vpeertest.TestLogger(t),
	})
	return r
}

// peerReads answers the tools' queries from the peer's first member.
type peerReads struct{ p *schedtest.Peer }

func (r peerReads) Status() (rep wu.StatusReply) {
	_ = r.p.Query(context.Background(), func(m *sched.Machine) { rep = m.Status() })
	rep.Applied = r.p.Members[0].Applied()
	return rep
}

func (r peerReads) Results(q wu.ResultsQuery) (rep wu.ResultsReply, err error) {
	_ = r.p.Query(context.Background(), func(m *sched.Machine) { rep, err = m.Results(q) })
	return rep, err
}

func (r peerReads) Accounts() (rep wu.AccountsReply) {
	_ = r.p.Query(context.Background(), func(m *sched.Machine) { rep = m.Accounts() })
	return rep
}

// Credit answers from the scheduler alone: the credit figures themselves are
// the accounting peer's (project/reads), zero here.
func (r peerReads) Credit(host string) (rep wu.CreditReply) {
	rep.V = wu.WireVersion
	_ = r.p.Query(context.Background(), func(m *sched.Machine) {
		if _, ok := m.OwnerOf(host); !ok {
			rep.Error = wu.Errorf(wu.CodeNotFound, "host %s is not registered", host)
		}
	})
	return rep
}

// send serves a request and waits for its first reply.
func (r *rig) send(ctx context.Context, msg *nats.Msg) (*nats.Msg, error) {
	inbox, c := r.router.inbox()
	defer r.router.forget(inbox)
	msg.Reply = inbox
	r.gw.Serve(ctx, msg)
	select {
	case reply := <-c:
		return reply, nil
	case <-ctx.Done():
		return nil, fmt.Errorf("%s: no reply: %w", msg.Subject, ctx.Err())
	}
}

func (r *rig) request(subject string, data []byte) *nats.Msg {
	r.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	reply, err := r.send(ctx, &nats.Msg{Subject: subject, Data: data})
	if err != nil {
		r.t.Fatal(err)
	}
	return reply
}

func (r *rig) ack(subject string, data []byte) wu.Ack {
	r.t.Helper()
	msg := r.request(subject, data)
	var ack wu.Ack
	if err := json.Unmarshal(msg.Data, &ack); err != nil {
		r.t.Fatalf("%s: reply %q: %v", subject, msg.Data, err)
	}
	return ack
}

func (r *rig) blobRequest(subject string, hdr map[string]string, data []byte) *nats.Msg {
	r.t.Helper()
	msg := nats.NewMsg(subject)
	for k, v := range hdr {
		msg.Header.Set(k, v)
	}
	msg.Data = data
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	reply, err := r.send(ctx, msg)
	if err != nil {
		r.t.Fatal(err)
	}
	return reply
}

// admin sends a command of the project's tools, numbered seq.
func (r *rig) admin(seq uint64, op string, body any) wu.Ack {
	r.t.Helper()
	return r.ack(wu.SubjectAdminCommand, wu.Encode(wu.Command{V: 1, Op: op, Host: "adm:test", Seq: seq, Body: wu.Encode(body)}))
}

// addApp stores and publishes module as app name.
func (r *rig) addApp(seq uint64, name string, module []byte) wu.Hash {
	r.t.Helper()
	h, _ := r.blobs.Put(context.Background(), module)
	if a := r.admin(seq, wu.OpAddApp, wu.AddApp{V: 1, Name: name, Hash: h, Size: int64(len(module)), Signature: string(signed(module))}); a.Error != nil {
		r.t.Fatal(a.Error)
	}
	return h
}

// stateOf is the part of the status that requests could change.
func (r *rig) stateOf() string {
	st := peerReads{r.peer}.Status()
	st.Now = time.Time{}
	st.Applied = 0
	b, _ := json.Marshal(st)
	return string(b)
}

// hello registers host and gives it a task of a one-unit batch of app.
func (r *rig) firstTask(app string) string {
	r.t.Helper()
	if a := r.admin(10, wu.OpSubmit, wu.Submit{V: 1, Batch: "b", App: app, Replication: 1, Quorum: 1, Units: []wu.UnitSpec{{Args: []string{"0", "10"}}}}); a.Error != nil {
		r.t.Fatal(a.Error)
	}
	for _, h := range []string{"h1", "h2"} {
		if a := r.ack("vol."+h+".hello", wu.Encode(wu.Hello{V: 1, Host: wu.HostInfo{Name: h, CPUs: 1}})); a.Error != nil {
			r.t.Fatal(a.Error)
		}
	}
	msg := r.request("vol.h1.work", wu.Encode(wu.WorkRequest{V: 1, Seq: 100, Slots: 1}))
	var work wu.WorkReply
	if err := json.Unmarshal(msg.Data, &work); err != nil || len(work.Assignments) != 1 {
		r.t.Fatalf("work reply %s %v", msg.Data, err)
	}
	return work.Assignments[0].Task
}

func TestGatewayRefusesBadInputAndChangesNothing(t *testing.T) {
	r := newRig(t, rigConfig{})
	r.addApp(1, "primes", apps.Primes)
	task := r.firstTask("primes")

	junk, _ := r.blobs.Put(context.Background(), []byte("not wasm!"))
	before, applied := r.stateOf(), r.peer.Members[0].Applied()
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
		{"malformed host id", "vol." + strings.Repeat("h", wu.MaxNameBytes+1) + ".work", wu.Encode(wu.WorkRequest{V: 1, Seq: 1, Slots: 1}), wu.CodeBadRequest},
		{"no seq", "vol.h1.beat", []byte(`{"tasks":[]}`), wu.CodeBadRequest},
		{"result for output never uploaded", "vol.h1.result",
			wu.Encode(wu.Report{V: 1, Seq: 101, Task: task, Outcome: wu.OutcomeSuccess, Output: wu.HashOf(output), OutputSize: 2}), wu.CodeNotFound},
		{"result whose output has another size", "vol.h1.result",
			wu.Encode(wu.Report{V: 1, Seq: 101, Task: task, Outcome: wu.OutcomeSuccess, Output: junk, OutputSize: 2}), wu.CodeBadRequest},
		{"attach under another nkey", wu.SubjectAttachPrefix + "UABC",
			wu.Encode(wu.AttachRequest{V: 1, NKey: "UDEF", AccountKey: "k", Host: wu.HostInfo{Name: "x", CPUs: 1}}), wu.CodeBadRequest},
		{"admin command that does not decode", wu.SubjectAdminCommand, []byte("[]"), wu.CodeBadRequest},
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
		{"app whose BOINC code signature is of another file", wu.SubjectAdminCommand,
			wu.Encode(wu.Command{V: 1, Op: wu.OpAddApp, Host: "adm:x", Seq: 4, Body: wu.Encode(wu.AddApp{V: 1, Name: "p2", Hash: wu.HashOf(apps.Primes), Size: int64(len(apps.Primes)), Signature: string(signed(apps.Primes)),
				CodeSigs: []wu.CodeSignature{{File: wu.CodeSignedModule, MD5: strings.Repeat("0a", 16), Signature: "0123\n.\n"}}})}), wu.CodeBadRequest},
		{"submit with an input never uploaded", wu.SubjectAdminCommand,
			wu.Encode(wu.Command{V: 1, Op: wu.OpSubmit, Host: "adm:x", Seq: 5, Body: wu.Encode(wu.Submit{V: 1, Batch: "c", App: "primes", Units: []wu.UnitSpec{{Stdin: wu.HashOf([]byte("in"))}}})}), wu.CodeNotFound},
		{"results query that does not decode", wu.SubjectAdminResults, []byte("{"), wu.CodeBadRequest},
		{"account settings naming another user", "vol.h1.account", []byte(`{"v":1,"user":"someone","country":"x"}`), wu.CodeForbidden},
		{"account settings changing nothing", "vol.h1.account", []byte(`{"v":1}`), wu.CodeBadRequest},
		{"account settings with a control character", "vol.h1.account", []byte(`{"v":1,"country":"a\u0007"}`), wu.CodeBadRequest},
		{"user.set naming no user", wu.SubjectAdminCommand,
			wu.Encode(wu.Command{V: 1, Op: wu.OpUserSet, Host: "adm:x", Seq: 6, Body: []byte(`{"v":1,"country":"x"}`)}), wu.CodeBadRequest},
		{"team with a javascript: address", wu.SubjectAdminCommand,
			wu.Encode(wu.Command{V: 1, Op: wu.OpTeamAdd, Host: "adm:x", Seq: 7, Body: wu.Encode(wu.TeamAdd{V: 1, Name: "t", URL: "javascript:alert(1)"})}), wu.CodeBadRequest},
	}
	for _, c := range cases {
		a := r.ack(c.subject, c.data)
		if a.Error == nil || a.Error.Code != c.code || a.Error.Message == "" {
			t.Errorf("%s: got %+v, want code %s", c.name, a.Error, c.code)
		}
	}
	if last, _ := r.peer.LastSeq(context.Background()); last != applied {
		t.Errorf("refused requests reached the log: %d records → %d", applied, last)
	}

	// An upload whose content does not match its declared hash is refused.
	wrong := r.blobRequest("vol.h1.blob.put", map[string]string{
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
		reply := r.blobRequest("vol.h1.blob.get", hdr, nil)
		if reply.Header.Get(wu.HeaderError) == "" || len(reply.Data) != 0 {
			t.Errorf("%s: blob get answered %d bytes, error %q", name, len(reply.Data), reply.Header.Get(wu.HeaderError))
		}
	}
	oversize := r.blobRequest("vol.h1.blob.put", map[string]string{
		wu.HeaderHash: string(wu.HashOf(output)), wu.HeaderSize: strconv.Itoa(wu.MaxOutputBytes + 1), wu.HeaderOffset: "0"}, output)
	if e := wu.ParseHeaderError(oversize.Header.Get(wu.HeaderError)); e == nil || e.Code != wu.CodeTooLarge {
		t.Errorf("oversized upload: %+v", e)
	}
	noSize := r.blobRequest("vol.h1.blob.put", map[string]string{wu.HeaderHash: string(wu.HashOf(output)), wu.HeaderOffset: "0"}, output)
	if e := wu.ParseHeaderError(noSize.Header.Get(wu.HeaderError)); e == nil || e.Code != wu.CodeBadRequest {
		t.Errorf("upload without a size: %+v", e)
	}

	// Now upload the output properly: a report from a host that does not
	// hold the task is refused; the holder's is taken.
	ok := r.blobRequest("vol.h2.blob.put", map[string]string{
		wu.HeaderHash: string(wu.HashOf(output)), wu.HeaderSize: "2", wu.HeaderOffset: "0"}, output)
	if ok.Header.Get(wu.HeaderError) != "" || ok.Header.Get(wu.HeaderDone) != "2" {
		t.Fatalf("upload: %v", ok.Header)
	}
	report := wu.Report{V: 1, Seq: 7, Task: task, Outcome: wu.OutcomeSuccess, Output: wu.HashOf(output), OutputSize: 2}
	if a := r.ack("vol.h2.result", wu.Encode(report)); a.Error == nil || a.Error.Code != wu.CodeNotAssigned {
		t.Fatalf("report by a host that does not hold the task: %+v", a.Error)
	}
	if after := r.stateOf(); after != before {
		t.Fatalf("refused requests changed the state:\n%s\n%s", before, after)
	}
	report.Seq = 101
	if a := r.ack("vol.h1.result", wu.Encode(report)); a.Error != nil {
		t.Fatalf("holder's report: %v", a.Error)
	}
	var res wu.ResultsReply
	msg := r.request(wu.SubjectAdminResults, wu.Encode(wu.ResultsQuery{V: 1, Batch: "b"}))
	if err := json.Unmarshal(msg.Data, &res); err != nil || len(res.Units) != 1 || res.Units[0].State != wu.WorkUnitValid || res.Units[0].Output != wu.HashOf(output) {
		t.Fatalf("results %s %v", msg.Data, err)
	}
	got := r.blobRequest("vol.h1.blob.get", map[string]string{wu.HeaderHash: string(res.Units[0].Output), wu.HeaderOffset: "0"}, nil)
	if string(got.Data) != "4\n" || got.Header.Get(wu.HeaderSize) != "2" {
		t.Fatalf("canonical output %q, headers %v", got.Data, got.Header)
	}
}

// TestGatewayChecksCheckpoints: vol.H.ckpt is taken only for a stored blob
// whose framing, checksum and header match the report.
func TestGatewayChecksCheckpoints(t *testing.T) {
	r := newRig(t, rigConfig{})
	module, err := wu.PrepareModule(apps.MandelR)
	if err != nil {
		t.Fatal(err)
	}
	app := r.addApp(1, "mandelr", module)
	task := r.firstTask("mandelr")

	header := func(seq uint64) wu.CheckpointHeader {
		return wu.CheckpointHeader{Kind: wu.CheckpointMemory, App: app, Task: task, Seq: seq, Progress: 0.5,
			MemoryBytes: 65536, PageBytes: 4096, Host: &wu.HostState{}}
	}
	put := func(b []byte) wu.CheckpointRef {
		h, _ := r.blobs.Put(context.Background(), b)
		return wu.CheckpointRef{Hash: h, Size: int64(len(b)), Seq: 1, Progress: 0.5}
	}
	seq := uint64(100)
	send := func(c wu.CheckpointRef) *wu.Error {
		seq++
		return r.ack("vol.h1.ckpt", wu.Encode(wu.CheckpointReport{V: 1, Seq: seq, Task: task, App: app, Checkpoint: c})).Error
	}

	good := wu.EncodeCheckpoint(header(1), []byte("body"))
	flipped := bytes.Clone(good)
	flipped[20] ^= 1
	otherTask := header(1)
	otherTask.Task = task + "x"
	notUploaded := wu.CheckpointRef{Hash: wu.HashOf([]byte("never")), Size: 5, Seq: 1}
	wrongSeq := put(good)
	wrongSeq.Seq = 2
	missingBase := put(good)
	missingBase.Base, missingBase.BaseSize = wu.HashOf([]byte("base")), 4
	for name, c := range map[string]struct {
		ref  wu.CheckpointRef
		want string
	}{
		"not uploaded":     {notUploaded, "has not been uploaded"},
		"flipped bit":      {put(flipped), "checksum"},
		"not a checkpoint": {put([]byte("just some bytes, long enough to be framed maybe")), "not a momonga checkpoint"},
		"for another task": {put(wu.EncodeCheckpoint(otherTask, nil)), "task"},
		"report disagrees": {wrongSeq, "does not match"},
		"base not stored":  {missingBase, "checkpoint base"},
	} {
		if e := send(c.ref); e == nil || !strings.Contains(e.Message, c.want) {
			t.Errorf("%s: %v, want an error saying %q", name, e, c.want)
		}
	}
	if e := send(put(good)); e != nil {
		t.Fatalf("good checkpoint refused: %v", e)
	}
	second := put(wu.EncodeCheckpoint(header(2), []byte("body 2")))
	second.Seq = 2
	if e := send(second); e != nil {
		t.Fatalf("second checkpoint refused: %v", e)
	}
}

// TestRateLimitAndFlood: a host over its rate is refused with a time to
// retry; one that keeps sending while refused is reported once and then
// not answered; another host is not affected.
func TestRateLimitAndFlood(t *testing.T) {
	now := schedtest.T0
	var flooders []string
	r := newRig(t, rigConfig{limiter: NewRateLimiter(1, 2, 3, func() time.Time { return now }), onFlood: func(h string) { flooders = append(flooders, h) }})
	hello := wu.Encode(wu.Hello{V: 1, Host: wu.HostInfo{Name: "h", CPUs: 1}})
	for i := range 2 {
		if a := r.ack("vol.h1.hello", hello); a.Error != nil {
			t.Fatalf("request %d within the burst: %v", i, a.Error)
		}
	}
	for i := range 2 {
		a := r.ack("vol.h1.hello", hello)
		if a.Error == nil || a.Error.Code != wu.CodeRateLimited || !strings.Contains(a.Error.Message, "retry in 1.0 s") {
			t.Fatalf("refusal %d over the rate: %+v", i, a.Error)
		}
	}
	// The third refusal within a second is a flood: reported, unanswered.
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	if reply, err := r.send(ctx, &nats.Msg{Subject: "vol.h1.hello", Data: hello}); err == nil {
		t.Fatalf("a flooding host was answered: %s", reply.Data)
	}
	if len(flooders) != 1 || flooders[0] != "h1" {
		t.Fatalf("flood reported for %v", flooders)
	}
	if a := r.ack("vol.h2.hello", hello); a.Error != nil {
		t.Fatalf("another host: %v", a.Error)
	}
	now = now.Add(2 * time.Second)
	if a := r.ack("vol.h1.hello", hello); a.Error != nil {
		t.Fatalf("after waiting: %v", a.Error)
	}
}

// gathering holds a lone request's append until another request waits to
// go out after it (or a while has passed), as a slower log would: the
// requests arriving together then go in one record however fast this
// machine runs the goroutines that send them.
type gathering struct {
	Log
	gw *Gateway
}

func (g *gathering) Append(ctx context.Context, rec vpeer.Record) (uint64, error) {
	for deadline := time.Now().Add(20 * time.Millisecond); len(rec.Batch) == 0 && time.Now().Before(deadline); time.Sleep(time.Millisecond) {
		g.gw.batch.mu.Lock()
		waiting := g.gw.batch.open != nil
		g.gw.batch.mu.Unlock()
		if waiting {
			break
		}
	}
	return g.Log.Append(ctx, rec)
}

// speculating is the mistake of replying before the entry is logged: it
// answers each volunteer's request from a copy of a member's state, then
// appends it.
type speculating struct {
	peer   *schedtest.Peer
	router *router
}

func (s speculating) Append(ctx context.Context, rec vpeer.Record) (uint64, error) {
	m := s.peer.Members[0]
	m.Query(func() {
		var buf bytes.Buffer
		if m.Machine().Snapshot(&buf) != nil {
			return
		}
		scratch := sched.New(sched.Config{Lease: time.Hour})
		if scratch.Restore(&buf) != nil {
			return
		}
		for _, q := range rec.Requests() {
			cmd, err := wu.Decode[wu.Command](q.Payload)
			if err != nil || strings.HasPrefix(cmd.Host, "adm:") {
				continue
			}
			reply := scratch.Apply(vpeer.Entry{Seq: m.Applied() + 1, Time: m.Status().Time, Payload: q.Payload})
			if reply != nil && q.ReplyTo != "" {
				_ = s.router.reply(q.ReplyTo, reply)
			}
		}
	})
	return s.peer.Append(ctx, rec)
}

// linearizable runs volunteers through a batch against a gateway on three
// members and returns porcupine's verdict on what they saw.
func linearizable(t *testing.T, speculate bool) string {
	const volunteers, rounds = 8, 4
	var rc rigConfig
	rc.members = 3
	gather := &gathering{}
	rc.log = func(p *schedtest.Peer, rt *router) Log {
		gather.Log = p
		if speculate {
			gather.Log = speculating{p, rt}
		}
		return gather
	}
	r := newRig(t, rc)
	gather.gw = r.gw
	output := []byte("42\n")
	r.blobs.Put(context.Background(), output)
	r.addApp(1, "primes", apps.Primes)
	sub := wu.Submit{V: 1, Batch: "b", App: "primes", Replication: 1, Quorum: 1, DeadlineSeconds: 3600}
	for i := range volunteers * rounds {
		sub.Units = append(sub.Units, wu.UnitSpec{Args: []string{"0", fmt.Sprint(i)}})
	}
	var sr wu.SubmitReply
	if err := json.Unmarshal(r.request(wu.SubjectAdminCommand, wu.Encode(wu.Command{V: 1, Op: wu.OpSubmit, Host: "adm:test", Seq: 2, Body: wu.Encode(sub)})).Data, &sr); err != nil || sr.Error != nil {
		t.Fatalf("submit: %v %v", err, sr.Error)
	}
	var tasks []string
	for _, id := range sr.Units {
		tasks = append(tasks, id+"_0")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	hist := schedtest.NewHistory()
	send := func(ctx context.Context, subject string, data []byte) ([]byte, error) {
		reply, err := r.send(ctx, &nats.Msg{Subject: subject, Data: data})
		if err != nil {
			return nil, err
		}
		return reply.Data, nil
	}
	var vs []*schedtest.Volunteer
	for i := range volunteers {
		v := schedtest.NewVolunteer(i, send, hist, output)
		if err := v.Hello(ctx); err != nil {
			t.Fatal(err)
		}
		vs = append(vs, v)
	}
	for range rounds {
		// All at once, as many volunteers do.
		var wg sync.WaitGroup
		for _, v := range vs {
			wg.Go(func() {
				out, err := v.Work(ctx)
				if err != nil {
					t.Error(err)
					return
				}
				for _, task := range out.Tasks {
					if _, err := v.Result(ctx, task); err != nil {
						t.Error(err)
					}
				}
			})
		}
		wg.Wait()
	}
	batched := 0
	for _, rec := range vpeertest.ReadAll(t, r.peer.MemLog) {
		if len(rec.Batch) > 1 {
			batched++
		}
	}
	if batched == 0 {
		t.Errorf("no record of the log held more than one request: batching untested")
	}
	return string(schedtest.Check(t, tasks, hist.Operations()))
}

// TestLinearizableAndSpeculationCaught: volunteers working through the
// gateway see a linearizable history; a gateway whose log replies before
// the entry is logged is caught by the same check.
func TestLinearizableAndSpeculationCaught(t *testing.T) {
	if got := linearizable(t, false); got != "Ok" {
		t.Fatalf("the gateway's history is %s; want Ok", got)
	}
	if got := linearizable(t, true); got != "Illegal" {
		t.Fatalf("the history of a gateway answering before logging is %s; want it caught as Illegal", got)
	}
}

func TestCreditIsAReadForTheHostItself(t *testing.T) {
	r := newRig(t, rigConfig{members: 1})
	hello := wu.Encode(wu.Hello{V: 1, Host: wu.HostInfo{Name: "n", OS: "linux", Arch: "amd64", CPUs: 1}})
	if a := r.ack("vol.h1.hello", hello); a.Error != nil {
		t.Fatal(a.Error)
	}
	before := r.stateOf()
	var rep wu.CreditReply
	if err := json.Unmarshal(r.request("vol.h1.credit", wu.Encode(wu.CreditRequest{V: 1})).Data, &rep); err != nil || rep.Error != nil {
		t.Fatalf("credit of a registered host: %+v, %v", rep, err)
	}
	if a := r.ack("vol.h2.credit", wu.Encode(wu.CreditRequest{V: 1})); wu.ErrorCode(a.Error) != wu.CodeNotFound {
		t.Errorf("credit of a host never seen: %v", a.Error)
	}
	if a := r.ack("vol.h1.credit", []byte("{not json")); wu.ErrorCode(a.Error) != wu.CodeBadRequest {
		t.Errorf("malformed credit request: %v", a.Error)
	}
	if after := r.stateOf(); after != before {
		t.Errorf("a credit request changed the state:\n%s\n%s", before, after)
	}
}
