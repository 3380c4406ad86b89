package daemon

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"errors"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/momonga-project/momonga/client/runner"
	"github.com/momonga-project/momonga/internal/natstest"
	"github.com/momonga-project/momonga/internal/wait"
	wu "github.com/momonga-project/momonga/workunits"
)

// fakeProject answers a volunteer the way a project server does, with
// whatever the test wants it to say: here, apps that must not run.
type fakeProject struct {
	t          *testing.T
	url        string
	signingKey string
	blobs      map[wu.Hash][]byte

	mu      sync.Mutex
	work    []wu.Assignment // handed out on the first work request
	reports []wu.Report
}

func startFakeProject(t *testing.T, signingKey string) *fakeProject {
	t.Helper()
	ns, nc := natstest.Start(t)
	p := &fakeProject{t: t, url: ns.ClientURL(), signingKey: signingKey, blobs: map[wu.Hash][]byte{}}
	respond := func(m *nats.Msg, v any) { _ = m.Respond(wu.Encode(v)) }
	handlers := map[string]nats.MsgHandler{
		"vol.*.hello": func(m *nats.Msg) {
			respond(m, wu.HelloReply{V: 1, Project: "fake", NextSeq: 1, BeatSeconds: 60, LeaseSeconds: 120, SigningKey: p.signingKey})
		},
		"vol.*.work": func(m *nats.Msg) {
			p.mu.Lock()
			as := p.work
			p.work = nil
			p.mu.Unlock()
			respond(m, wu.WorkReply{V: 1, Assignments: as, RetrySeconds: 60})
		},
		"vol.*.beat": func(m *nats.Msg) { respond(m, wu.BeatReply{V: 1}) },
		"vol.*.result": func(m *nats.Msg) {
			r, err := wu.Decode[wu.Report](m.Data)
			if err != nil {
				t.Errorf("report: %v", err)
			}
			p.mu.Lock()
			p.reports = append(p.reports, r)
			p.mu.Unlock()
			respond(m, wu.Ack{V: 1})
		},
		"vol.*.blob.get": func(m *nats.Msg) {
			b := p.blobs[wu.Hash(m.Header.Get(wu.HeaderHash))]
			reply := nats.NewMsg(m.Reply)
			reply.Header.Set(wu.HeaderSize, strconv.Itoa(len(b)))
			if off, _ := strconv.Atoi(m.Header.Get(wu.HeaderOffset)); off == 0 {
				reply.Data = b
			}
			_ = m.RespondMsg(reply)
		},
	}
	for subj, h := range handlers {
		if _, err := nc.Subscribe(subj, h); err != nil {
			t.Fatal(err)
		}
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	return p
}

func (p *fakeProject) reportsNow() []wu.Report {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]wu.Report(nil), p.reports...)
}

func key(seed byte) ed25519.PrivateKey {
	return ed25519.NewKeyFromSeed(bytes.Repeat([]byte{seed}, ed25519.SeedSize))
}

func newTestDaemon(t *testing.T, url, dir string) *Daemon {
	t.Helper()
	d, err := New(Config{DataDir: dir, Project: url, CPUs: 3, Name: "victim",
		// No module gets this far; if one did, the worker would fail.
		Worker: runner.Worker{Command: []string{"/bin/false"}}})
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// TestClientRefusesTamperedForeignAndUnsignedModules runs a real daemon
// against a project that hands out three modules it must not run.
func TestClientRefusesTamperedForeignAndUnsignedModules(t *testing.T) {
	project, other := key(1), key(2)
	p := startFakeProject(t, wu.FormatPublicKey(project.Public().(ed25519.PublicKey)))
	module := []byte("\x00asm\x01\x00\x00\x00")
	tampered := append(bytes.Clone(module), 0, 0) // a custom section's worth of change
	p.blobs[wu.HashOf(module)] = module
	p.blobs[wu.HashOf(tampered)] = tampered
	genuine := string(wu.SignApp(project, module).Encode())
	p.work = []wu.Assignment{
		{Task: "tampered", App: "a", AppHash: wu.HashOf(tampered), AppSize: int64(len(tampered)), AppSig: genuine},
		{Task: "foreign", App: "a", AppHash: wu.HashOf(module), AppSize: int64(len(module)), AppSig: string(wu.SignApp(other, module).Encode())},
		{Task: "unsigned", App: "a", AppHash: wu.HashOf(module), AppSize: int64(len(module))},
	}
	d := newTestDaemon(t, p.url, t.TempDir())
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- d.Run(ctx) }()
	if !wait.Until(20*time.Second, wait.Every, func() bool { return len(p.reportsNow()) >= 3 }) {
		t.Fatalf("reports after 20 s: %+v", p.reportsNow())
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"tampered": "it was altered", "foreign": "not by the project's key", "unsigned": "not signed"}
	for _, r := range p.reportsNow() {
		if r.Outcome != wu.OutcomeFailure || !strings.Contains(r.Reason, "refusing to run app a") || !strings.Contains(r.Reason, want[r.Task]) {
			t.Errorf("task %s: %s %q, want a failure saying %q", r.Task, r.Outcome, r.Reason, want[r.Task])
		}
		t.Logf("%s: %s", r.Task, r.Reason)
	}
}

// TestClientRefusesAChangedSigningKey: the key a project signs with is
// pinned the first time; a project that later presents another is refused.
func TestClientRefusesAChangedSigningKey(t *testing.T) {
	dir := t.TempDir()
	first := startFakeProject(t, wu.FormatPublicKey(key(1).Public().(ed25519.PublicKey)))
	ctx, cancel := context.WithCancel(context.Background())
	d := newTestDaemon(t, first.url, dir)
	done := make(chan error, 1)
	go func() { done <- d.Run(ctx) }()
	wait.For(t, 10*time.Second, "the signing key pinned", func() bool {
		a, ok, err := LoadAttachment(dir)
		if err != nil {
			t.Fatal(err)
		}
		return ok && a.SigningKey != ""
	})
	cancel()
	<-done

	impostor := startFakeProject(t, wu.FormatPublicKey(key(2).Public().(ed25519.PublicKey)))
	err := newTestDaemon(t, impostor.url, dir).Run(context.Background())
	if err == nil || !strings.Contains(err.Error(), "refusing its apps") {
		t.Fatalf("run against a project with another key: %v", err)
	}
}

func FuzzDecodeReply(f *testing.F) {
	for _, v := range []any{
		wu.HelloReply{V: 1, NextSeq: 3, SigningKey: "ed25519:x"},
		wu.WorkReply{V: 1, Assignments: []wu.Assignment{{Task: "t", AppHash: wu.HashOf(nil)}}},
		wu.Ack{V: 1, Error: &wu.Error{Code: wu.CodeRateLimited, Message: "slow down"}},
		wu.AttachReply{V: 1, Host: "h1"},
	} {
		f.Add(wu.Encode(v))
	}
	// Whatever the project answers, the client neither panics nor takes it
	// for anything but the project's error or a malformed reply.
	f.Fuzz(func(t *testing.T, b []byte) {
		for _, out := range []any{&wu.HelloReply{}, &wu.WorkReply{}, &wu.BeatReply{}, &wu.Ack{}, &wu.AttachReply{}} {
			err := decodeReply(b, out)
			var e *wu.Error
			if err != nil && !errors.As(err, &e) && !strings.Contains(err.Error(), "malformed reply") {
				t.Fatalf("decodeReply(%q): %v", b, err)
			}
		}
	})
}
