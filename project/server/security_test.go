package server

import (
	"context"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nkeys"

	"github.com/momonga-project/momonga/apps"
	"github.com/momonga-project/momonga/internal/wait"
	"github.com/momonga-project/momonga/project/admin"
	"github.com/momonga-project/momonga/project/auth"
	"github.com/momonga-project/momonga/project/auth/probe"
	"github.com/momonga-project/momonga/project/sched"
	wu "github.com/momonga-project/momonga/workunits"
)

// These tests attack a secured project (operator mode, auth callout, TLS)
// with real NATS clients holding one host's credentials, and check that
// NATS or the gateway refuses every attempt while other hosts are served.

// secureProject is a running secured server with its tools connected.
type secureProject struct {
	t   *testing.T
	srv *Server
	adm *admin.Client
	url string
	ca  string
	tls auth.DevTLS
	dir string // the server's data directory
}

func startSecure(t *testing.T, trust Trust, configure ...func(*Config)) *secureProject {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	dir := t.TempDir()
	tls, err := auth.WriteDevTLS(filepath.Join(dir, "tls"), "127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	trust.SigningKey = testKey.Public().(ed25519.PublicKey)
	trust.TLSCert, trust.TLSKey = tls.Cert, tls.Key
	cfg := Embedded(filepath.Join(dir, "project"), "127.0.0.1:0")
	cfg.TickInterval, cfg.Sched, cfg.Trust = time.Hour, sched.Config{Lease: time.Minute}, trust
	for _, c := range configure {
		c(&cfg)
	}
	srv, err := Start(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	if !strings.HasPrefix(srv.ClientURL(), "tls://") {
		t.Fatalf("client URL %s is not TLS", srv.ClientURL())
	}
	adm, err := admin.Dial(ctx, srv.ClientURL(), nats.UserCredentials(srv.AdminCreds()), nats.RootCAs(tls.CA))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(adm.Close)
	return &secureProject{t: t, srv: srv, adm: adm, url: srv.ClientURL(), ca: tls.CA, tls: tls, dir: filepath.Join(dir, "project")}
}

// host is one attached host: its id and key.
type host struct {
	id string
	kp nkeys.KeyPair
}

// attach makes a user and attaches a host to it, as `momonga attach` does.
func (p *secureProject) attach(user string) host {
	p.t.Helper()
	_, key, err := p.adm.AddUser(context.Background(), user, "", "")
	if err != nil {
		p.t.Fatal(err)
	}
	kp, _ := nkeys.CreateUser()
	pub, _ := kp.PublicKey()
	nc, err := nats.Connect(p.url, nats.UserInfo(auth.AttachUserPrefix+pub, key), nats.CustomInboxPrefix(wu.InboxPrefix(pub)), nats.RootCAs(p.ca))
	if err != nil {
		p.t.Fatalf("attach connection: %v", err)
	}
	defer nc.Close()
	msg, err := nc.Request(wu.AttachSubject(pub), wu.Encode(wu.AttachRequest{V: 1, AccountKey: key, NKey: pub, Host: wu.HostInfo{Name: user}}), 5*time.Second)
	if err != nil {
		p.t.Fatalf("attach: %v", err)
	}
	var rep wu.AttachReply
	if err := json.Unmarshal(msg.Data, &rep); err != nil || rep.Error != nil || rep.Host == "" {
		p.t.Fatalf("attach reply %s (%v)", msg.Data, err)
	}
	if rep.SigningKey != wu.FormatPublicKey(testKey.Public().(ed25519.PublicKey)) {
		p.t.Fatalf("attach gave signing key %q", rep.SigningKey)
	}
	return host{id: rep.Host, kp: kp}
}

// connect connects as h, signing the nonce with sign (h's own key unless
// the test forges).
func (p *secureProject) connect(h host, sign nkeys.KeyPair, e *probe.Errors) (*nats.Conn, error) {
	pub, _ := h.kp.PublicKey()
	if sign == nil {
		sign = h.kp
	}
	opts := []nats.Option{nats.Nkey(pub, sign.Sign), nats.CustomInboxPrefix(wu.InboxPrefix(h.id)), nats.RootCAs(p.ca), nats.NoReconnect()}
	if e != nil {
		opts = append(opts, nats.ErrorHandler(e.Handler))
	}
	return nats.Connect(p.url, opts...)
}

func (p *secureProject) mustConnect(h host, e *probe.Errors) *nats.Conn {
	p.t.Helper()
	nc, err := p.connect(h, nil, e)
	if err != nil {
		p.t.Fatalf("host %s: %v", h.id, err)
	}
	p.t.Cleanup(nc.Close)
	return nc
}

func hello(nc *nats.Conn, id string) error {
	msg, err := nc.Request(wu.VolunteerSubject(id, wu.OpHello), wu.Encode(wu.Hello{V: 1, Host: wu.HostInfo{Name: id, CPUs: 1}}), 5*time.Second)
	if err != nil {
		return err
	}
	var rep wu.HelloReply
	if err := json.Unmarshal(msg.Data, &rep); err != nil {
		return err
	}
	if rep.Error != nil {
		return rep.Error
	}
	return nil
}

func TestOneHostsCredentialsReachNothingElse(t *testing.T) {
	p := startSecure(t, Trust{})
	a, b := p.attach("ann"), p.attach("bob")
	var ea, eb probe.Errors
	ncA, ncB := p.mustConnect(a, &ea), p.mustConnect(b, &eb)
	if err := hello(ncA, a.id); err != nil {
		t.Fatalf("a host's own request: %v", err)
	}
	if err := hello(ncB, b.id); err != nil {
		t.Fatal(err)
	}

	// Everything A may not see or send is refused, and B's own traffic
	// goes on meanwhile.
	if err := probe.Isolation(ncA, &ea, a.id, b.id, 5*time.Second); err != nil {
		t.Error(err)
	}
	if err := hello(ncB, b.id); err != nil {
		t.Fatalf("B during A's attempts: %v", err)
	}

	// A payload over the host's limit closes the connection.
	big := make([]byte, auth.DefaultLimits().Payload+1)
	var eBig probe.Errors
	ncBig := p.mustConnect(a, &eBig)
	_ = ncBig.Publish(wu.VolunteerSubject(a.id, wu.OpBlobPut), big)
	_ = ncBig.Flush()
	wait.For(t, 5*time.Second, "the oversized publish to close its connection", func() bool { return ncBig.IsClosed() })
	t.Logf("oversized payload: %v", ncBig.LastError())
	if err := hello(ncB, b.id); err != nil {
		t.Fatalf("B after A's oversized payload: %v", err)
	}
}

func TestConnectionsForgedAndRevokedKeys(t *testing.T) {
	p := startSecure(t, Trust{})
	a, b := p.attach("ann"), p.attach("bob")

	// Connections: A may hold its limit and no more; B is not affected.
	limit := int(auth.DefaultLimits().Connections)
	var conns []*nats.Conn
	for i := 0; i < limit; i++ {
		conns = append(conns, p.mustConnect(a, nil))
	}
	if nc, err := p.connect(a, nil, nil); err == nil {
		nc.Close()
		t.Fatalf("host %s opened connection %d over its limit of %d", a.id, limit+1, limit)
	} else {
		t.Logf("connection %d of host %s: %v", limit+1, a.id, err)
	}
	ncB := p.mustConnect(b, nil)
	if err := hello(ncB, b.id); err != nil {
		t.Fatalf("B while A holds all its connections: %v", err)
	}

	// Forged keys: a key never attached, A's public key with another
	// key's signature, no credentials at all, a wrong account key.
	stranger, _ := nkeys.CreateUser()
	if _, err := p.connect(host{id: "h99", kp: stranger}, nil, nil); !errors.Is(err, nats.ErrAuthorization) {
		t.Errorf("unknown key: %v", err)
	}
	if _, err := p.connect(a, stranger, nil); !errors.Is(err, nats.ErrAuthorization) {
		t.Errorf("A's public key signed by another key: %v", err)
	}
	if _, err := nats.Connect(p.url, nats.RootCAs(p.ca)); !errors.Is(err, nats.ErrAuthorization) {
		t.Errorf("no credentials: %v", err)
	}
	pub, _ := stranger.PublicKey()
	if _, err := nats.Connect(p.url, nats.UserInfo(auth.AttachUserPrefix+pub, "0123456789abcdef0123456789abcdef"), nats.RootCAs(p.ca)); !errors.Is(err, nats.ErrAuthorization) {
		t.Errorf("attach with an unknown account key: %v", err)
	}
	// Without TLS the listener does not talk at all.
	if _, err := nats.Connect(strings.Replace(p.url, "tls://", "nats://", 1), nats.Nkey(pub, stranger.Sign)); err == nil {
		t.Error("a plain-text connection was accepted")
	}

	// Revoked: A's connections close and it may not connect again.
	if err := p.adm.RevokeHost(context.Background(), a.id); err != nil {
		t.Fatal(err)
	}
	wait.For(t, 5*time.Second, "the revoked host's connections to close", func() bool {
		for _, nc := range conns {
			if !nc.IsClosed() {
				return false
			}
		}
		return true
	})
	if _, err := p.connect(a, nil, nil); !errors.Is(err, nats.ErrAuthorization) {
		t.Errorf("revoked key: %v", err)
	}
	if err := hello(ncB, b.id); err != nil {
		t.Fatalf("B after A's revocation: %v", err)
	}
}

// TestRequestFloodIsThrottled floods the gateway from one host while
// another measures its own request latency, and reports both.
func TestRequestFloodIsThrottled(t *testing.T) {
	// The limiter's clock stands still, so that what is allowed does not
	// depend on how fast this machine runs the test: each host may send 600
	// requests, the victim sends about 500, back to back, and the flooder
	// far more.
	frozen := time.Now()
	p := startSecure(t, Trust{HostRate: 20, HostBurst: 600, Now: func() time.Time { return frozen }})
	flooder, victim := p.attach("flooder"), p.attach("victim")
	var closedAt time.Time
	var closedMu sync.Mutex
	pubF, _ := flooder.kp.PublicKey()
	ncF, err := nats.Connect(p.url, nats.Nkey(pubF, flooder.kp.Sign), nats.CustomInboxPrefix(wu.InboxPrefix(flooder.id)), nats.RootCAs(p.ca), nats.NoReconnect(),
		nats.ErrorHandler(func(*nats.Conn, *nats.Subscription, error) {}),
		nats.ClosedHandler(func(*nats.Conn) { closedMu.Lock(); closedAt = time.Now(); closedMu.Unlock() }))
	if err != nil {
		t.Fatal(err)
	}
	defer ncF.Close()
	ncV := p.mustConnect(victim, nil)
	if err := hello(ncF, flooder.id); err != nil {
		t.Fatal(err)
	}
	type sample struct {
		at  time.Time
		lat time.Duration
	}
	measure := func(n int) []sample {
		var s []sample
		for i := 0; i < n; i++ {
			start := time.Now()
			if err := hello(ncV, victim.id); err != nil {
				t.Fatalf("victim request %d: %v", i, err)
			}
			s = append(s, sample{start, time.Since(start)})
		}
		return s
	}
	lats := func(s []sample, keep func(sample) bool) []time.Duration {
		var d []time.Duration
		for _, x := range s {
			if keep(x) {
				d = append(d, x.lat)
			}
		}
		return d
	}
	all := func(sample) bool { return true }
	base := lats(measure(100), all)

	var mu sync.Mutex
	replies := map[string]int{}
	sub, err := ncF.Subscribe(wu.InboxPrefix(flooder.id)+".flood", func(m *nats.Msg) {
		var ack wu.Ack
		_ = json.Unmarshal(m.Data, &ack)
		code := "ok"
		if ack.Error != nil {
			code = ack.Error.Code
		}
		mu.Lock()
		replies[code]++
		mu.Unlock()
	})
	if err != nil {
		t.Fatal(err)
	}
	body := wu.Encode(wu.WorkRequest{V: 1, Seq: 1, Slots: 1})
	send := func() error {
		return ncF.PublishRequest(wu.VolunteerSubject(flooder.id, wu.OpWork), wu.InboxPrefix(flooder.id)+".flood", body)
	}
	// A burst over the host's allowance: the excess is refused with an
	// error that says why, and the host stays connected.
	for i := 0; i < 650; i++ {
		if err := send(); err != nil {
			t.Fatal(err)
		}
	}
	wait.For(t, 5*time.Second, "rate_limited replies to the burst", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return replies["ok"]+replies[wu.CodeRateLimited] >= 650
	})
	if ncF.IsClosed() {
		t.Fatal("a burst a little over the limit cut the host off")
	}
	mu.Lock()
	t.Logf("burst of 650: replies %v", replies)
	if replies[wu.CodeRateLimited] != 51 {
		t.Errorf("%d of the burst refused, want the 51 over the allowance of 600 (one spent on hello)", replies[wu.CodeRateLimited])
	}
	mu.Unlock()
	_ = sub.Unsubscribe()

	// The flood: requests as fast as one connection sends them, then, cut
	// off, connection attempts, for as long as the victim measures.
	stop := make(chan struct{})
	sent, reconnects := 0, 0
	done := make(chan struct{})
	floodStart := time.Now()
	go func() {
		defer close(done)
		for {
			select {
			case <-stop:
				return
			default:
			}
			if ncF.IsClosed() {
				if nc, err := p.connect(flooder, nil, nil); err == nil {
					nc.Close()
					t.Error("the throttled host reconnected")
				}
				reconnects++
				continue
			}
			if send() == nil {
				sent++
			}
		}
	}()
	during := measure(400)
	close(stop)
	<-done
	closedMu.Lock()
	cut := closedAt
	closedMu.Unlock()
	if cut.IsZero() {
		t.Fatal("the flooder was never cut off")
	}
	before := lats(during, func(s sample) bool { return s.at.Before(cut) })
	after := lats(during, func(s sample) bool { return !s.at.Before(cut) })
	t.Logf("flood: %d requests sent in %v before the host was cut off; then %d connection attempts, all refused",
		sent, cut.Sub(floodStart).Round(time.Microsecond), reconnects)
	report := func(name string, d []time.Duration) {
		if len(d) > 0 {
			t.Logf("victim's hello latency %s: %d requests, p50 %v, p99 %v, max %v", name, len(d), pct(d, 50), pct(d, 99), pct(d, 100))
		}
	}
	report("before the flood", base)
	report("while the flooder was connected", before)
	report("after it was cut off, while it kept reconnecting", after)
	if d := append(before, after...); pct(d, 99) > time.Second {
		t.Errorf("the victim's p99 latency during the flood is %v", pct(d, 99))
	}
}

func pct(d []time.Duration, p int) time.Duration {
	s := slices.Clone(d)
	slices.Sort(s)
	i := min(len(s)-1, len(s)*p/100)
	return s[i].Round(10 * time.Microsecond)
}

func TestAttachedHostsComputeWithSignedApps(t *testing.T) {
	p := startSecure(t, Trust{})
	ctx := context.Background()
	if _, err := p.adm.AddApp(ctx, "primes", apps.Primes, signed(apps.Primes), wu.Policy{Replication: 1, Quorum: 1}); err != nil {
		t.Fatal(err)
	}
	if _, err := p.adm.Submit(ctx, wu.Submit{Batch: "b", App: "primes", Units: []wu.UnitSpec{{Args: []string{"0", "10"}}}}); err != nil {
		t.Fatal(err)
	}
	a := p.attach("ann")
	nc := p.mustConnect(a, nil)
	if err := hello(nc, a.id); err != nil {
		t.Fatal(err)
	}
	msg, err := nc.Request(wu.VolunteerSubject(a.id, wu.OpWork), wu.Encode(wu.WorkRequest{V: 1, Seq: 100, Slots: 1}), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	var work wu.WorkReply
	if err := json.Unmarshal(msg.Data, &work); err != nil || len(work.Assignments) != 1 {
		t.Fatalf("work %s %v", msg.Data, err)
	}
	as := work.Assignments[0]
	if err := wu.VerifyApp(testKey.Public().(ed25519.PublicKey), apps.Primes, []byte(as.AppSig)); err != nil {
		t.Fatalf("assignment's signature: %v", err)
	}
	// The host downloads the module through the gateway, across accounts.
	get := nats.NewMsg(wu.VolunteerSubject(a.id, wu.OpBlobGet))
	get.Header.Set(wu.HeaderHash, string(as.AppHash))
	get.Header.Set(wu.HeaderOffset, "0")
	reply, err := nc.RequestMsg(get, 5*time.Second)
	if err != nil || reply.Header.Get(wu.HeaderError) != "" || len(reply.Data) == 0 {
		t.Fatalf("blob get: %v %v", err, reply.Header)
	}
	acc, err := p.adm.Accounts(ctx)
	if err != nil || len(acc.Users) != 1 || acc.Users[0].Hosts != 1 {
		t.Fatalf("accounts %+v %v", acc, err)
	}

	// Its result is credited by the accounting peer: the project's
	// connection delivers the grant there and acknowledges it.
	out := []byte("4\n")
	put := blobRequest(t, nc, wu.VolunteerSubject(a.id, wu.OpBlobPut), map[string]string{
		wu.HeaderHash: string(wu.HashOf(out)), wu.HeaderSize: strconv.Itoa(len(out)), wu.HeaderOffset: "0"}, out)
	if e := put.Header.Get(wu.HeaderError); e != "" {
		t.Fatal(e)
	}
	report := wu.Report{V: 1, Seq: 101, Task: as.Task, Outcome: wu.OutcomeSuccess, Output: wu.HashOf(out), OutputSize: int64(len(out)), CPUSeconds: 1}
	if r := request(t, nc, wu.VolunteerSubject(a.id, wu.OpResult), wu.Encode(report)); r.Error != nil {
		t.Fatal(r.Error)
	}
	waitDelivered(t, p.srv, 1)
	if acc, err := p.adm.Accounts(ctx); err != nil || acc.Users[0].Credit <= 0 {
		t.Fatalf("accounts after a valid result: %+v %v", acc, err)
	}
}

// TestIdleHostsHearOfWorkAtOnce: hosts whose work requests found nothing
// are told on their own push inbox, across the accounts of a secured
// project, as soon as work is submitted; each hears only its own.
func TestIdleHostsHearOfWorkAtOnce(t *testing.T) {
	p := startSecure(t, Trust{})
	ctx := context.Background()
	if _, err := p.adm.AddApp(ctx, "primes", apps.Primes, signed(apps.Primes), wu.Policy{Replication: 1, Quorum: 1}); err != nil {
		t.Fatal(err)
	}
	a, b := p.attach("ann"), p.attach("bob")
	pushed := map[string]chan time.Time{a.id: make(chan time.Time, 4), b.id: make(chan time.Time, 4)}
	for _, h := range []host{a, b} {
		nc := p.mustConnect(h, nil)
		if _, err := nc.Subscribe(wu.PushSubject(h.id), func(*nats.Msg) { pushed[h.id] <- time.Now() }); err != nil {
			t.Fatal(err)
		}
		if err := hello(nc, h.id); err != nil {
			t.Fatal(err)
		}
		msg, err := nc.Request(wu.VolunteerSubject(h.id, wu.OpWork), wu.Encode(wu.WorkRequest{V: 1, Seq: 100, Slots: 1}), 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		var work wu.WorkReply
		if err := json.Unmarshal(msg.Data, &work); err != nil || len(work.Assignments) != 0 {
			t.Fatalf("work from an empty project: %s %v", msg.Data, err)
		}
	}
	submitted := time.Now()
	if _, err := p.adm.Submit(ctx, wu.Submit{Batch: "b", App: "primes", Units: []wu.UnitSpec{{Args: []string{"0", "10"}}, {Args: []string{"10", "20"}}}}); err != nil {
		t.Fatal(err)
	}
	for id, c := range pushed {
		select {
		case at := <-c:
			t.Logf("%s told of work %v after the submission", id, at.Sub(submitted))
			if at.Sub(submitted) > time.Second {
				t.Errorf("%s was told %v after the submission, want within a second", id, at.Sub(submitted))
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("%s, idle, was not told of the work submitted", id)
		}
	}
	for id, c := range pushed {
		select {
		case <-c:
			t.Errorf("%s was told twice", id)
		case <-time.After(100 * time.Millisecond):
		}
	}
}
