package control

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/momonga-project/momonga/client/eventlog"
	"github.com/momonga-project/momonga/client/host"
	"github.com/momonga-project/momonga/client/prefs"
)

// fakeBackend answers with fixed data and records what it was told.
type fakeBackend struct {
	prefs     prefs.Prefs
	suspended bool
	attached  []string
}

func (f *fakeBackend) Status() Status      { return Status{Host: "h1", UserSuspended: f.suspended} }
func (f *fakeBackend) Tasks() []Task       { return []Task{{ID: "t1", State: "running"}} }
func (f *fakeBackend) Projects() []Project { return []Project{{URL: "nats://p", Share: 100}} }
func (f *fakeBackend) Host() HostReport    { return HostReport{Info: host.Info{Cores: 2}} }
func (f *fakeBackend) Prefs() prefs.Prefs  { return f.prefs }
func (f *fakeBackend) Suspend() Status     { f.suspended = true; return f.Status() }
func (f *fakeBackend) Resume() Status      { f.suspended = false; return f.Status() }
func (f *fakeBackend) Detach(string) error { return errors.New("not attached to that project") }
func (f *fakeBackend) SetPref(k, v string) (prefs.Prefs, error) {
	err := f.prefs.Set(k, v)
	return f.prefs, err
}
func (f *fakeBackend) Benchmark(context.Context) (host.Benchmarks, error) {
	return host.Benchmarks{FLOPS: 1e9}, nil
}
func (f *fakeBackend) Attach(_ context.Context, url string, _ float64) error {
	f.attached = append(f.attached, url)
	return nil
}
func (f *fakeBackend) AttachWithKey(_ context.Context, req AttachRequest) (Attached, error) {
	rec := req.URL + " key " + req.AccountKey
	if req.CA != "" {
		rec += " ca " + req.CA
	}
	f.attached = append(f.attached, rec)
	return Attached{URL: req.URL, Host: "h1", Project: "p"}, nil
}
func (f *fakeBackend) AttachAccount(_ context.Context, url, key string, _ float64) error {
	f.attached = append(f.attached, url+" key "+key)
	return nil
}
func (f *fakeBackend) Log(n int) ([]eventlog.Entry, error) {
	return []eventlog.Entry{{Message: "task started"}}[:min(n, 1)], nil
}
func (f *fakeBackend) Picture(task string) ([]byte, error) {
	if task == "t1" {
		return []byte("\x89PNG fake"), nil
	}
	return nil, ErrNoPicture
}
func (f *fakeBackend) Changes() <-chan struct{} { return make(chan struct{}) }

func serve(t *testing.T) (string, *fakeBackend) {
	dir, b, _ := serveWith(t, nil)
	return dir, b
}

// serveWith serves the API, and page at / when it is given.
func serveWith(t *testing.T, page http.Handler) (string, *fakeBackend, *Server) {
	t.Helper()
	dir := t.TempDir()
	b := &fakeBackend{prefs: prefs.Defaults()}
	s, err := Listen(dir, "", b, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	if page != nil {
		s.Handle("/", page)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	})
	return dir, b, s
}

func TestClientWithTheToken(t *testing.T) {
	dir, b := serve(t)
	st, err := os.Stat(filepath.Join(dir, TokenFile))
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("token file: %v, %v", st, err)
	}
	c, err := Dial(dir)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if s, err := c.Status(ctx); err != nil || s.Host != "h1" {
		t.Errorf("status %+v, %v", s, err)
	}
	if ts, err := c.Tasks(ctx); err != nil || len(ts) != 1 {
		t.Errorf("tasks %+v, %v", ts, err)
	}
	if s, err := c.Suspend(ctx); err != nil || !s.UserSuspended || !b.suspended {
		t.Errorf("suspend %+v, %v", s, err)
	}
	if err := c.Attach(ctx, "nats://x:4222", 50); err != nil || len(b.attached) != 1 {
		t.Errorf("attach: %v %v", err, b.attached)
	}
	a, err := c.AttachWithKey(ctx, AttachRequest{URL: "nats://z:4222", AccountKey: "key", CA: "pem"})
	if err != nil || a.Host != "h1" || len(b.attached) != 2 || b.attached[1] != "nats://z:4222 key key ca pem" {
		t.Errorf("attach with an account key: %+v %v %v", a, err, b.attached)
	}
	if err := c.Detach(ctx, "nats://y"); err == nil || !strings.Contains(err.Error(), "not attached") {
		t.Errorf("detach error: %v", err)
	}
	if p, err := c.SetPref(ctx, "cpu_usage_limit", "60"); err != nil || p.CPUUsageLimit != 60 {
		t.Errorf("set pref %+v, %v", p, err)
	}
	_, err = c.SetPref(ctx, "cpu_usage_limit", "0")
	if err == nil || !strings.Contains(err.Error(), "from 1 to 100") {
		t.Errorf("out of range pref: %v", err)
	}
}

func TestWrongOrMissingTokenRefused(t *testing.T) {
	dir, b := serve(t)
	addr, _ := os.ReadFile(filepath.Join(dir, AddrFile))
	for _, token := range []string{"", "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"} {
		c := NewClient(strings.TrimSpace(string(addr)), token)
		if _, err := c.Status(context.Background()); !errors.Is(err, ErrUnauthorized) {
			t.Errorf("token %q: %v", token, err)
		}
		if _, err := c.Suspend(context.Background()); !errors.Is(err, ErrUnauthorized) || b.suspended {
			t.Errorf("token %q suspended: %v", token, err)
		}
	}
	// A request through another name (DNS rebinding from a web page).
	tok, _ := os.ReadFile(filepath.Join(dir, TokenFile))
	req, _ := http.NewRequest("GET", "http://"+strings.TrimSpace(string(addr))+"/v1/status", nil)
	req.Host = "evil.example:80"
	req.Header.Set("Authorization", "Bearer "+strings.TrimSpace(string(tok)))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden {
		t.Errorf("foreign Host header: %s", resp.Status)
	}
}

func TestLoopbackOnly(t *testing.T) {
	for _, addr := range []string{"0.0.0.0:0", ":0", "192.0.2.1:0"} {
		if _, err := Listen(t.TempDir(), addr, &fakeBackend{}, slog.New(slog.DiscardHandler)); err == nil || !strings.Contains(err.Error(), "loopback") {
			t.Errorf("listen on %s: %v", addr, err)
		}
	}
}

func TestNotRunning(t *testing.T) {
	if _, err := Dial(t.TempDir()); !errors.Is(err, ErrNotRunning) {
		t.Errorf("dial an empty data directory: %v", err)
	}
}

func TestTokenKeptAndTightened(t *testing.T) {
	dir := t.TempDir()
	tok := strings.Repeat("ab", 32)
	os.WriteFile(filepath.Join(dir, TokenFile), []byte(tok+"\n"), 0o644)
	got, err := loadOrCreateToken(dir)
	if err != nil || string(got) != tok {
		t.Fatalf("token %q, %v", got, err)
	}
	if st, _ := os.Stat(filepath.Join(dir, TokenFile)); st.Mode().Perm() != 0o600 {
		t.Errorf("token file left %v", st.Mode())
	}
}

// TestGroupMayUseTheClient: in a data directory that lets its group in (the
// packages' /var/lib/momonga), the token and the address are the group's to
// read too, so that the people in it can use momonga's commands; in a
// person's own directory, they stay the owner's.
func TestGroupMayUseTheClient(t *testing.T) {
	for _, c := range []struct {
		dir, files os.FileMode
	}{{0o750, 0o640}, {0o700, 0o600}, {0o710, 0o600}, {0o755, 0o600}} {
		dir := filepath.Join(t.TempDir(), "data")
		if err := os.Mkdir(dir, c.dir); err != nil {
			t.Fatal(err)
		}
		os.Chmod(dir, c.dir)
		s, err := Listen(dir, "", &fakeBackend{}, slog.New(slog.DiscardHandler))
		if err != nil {
			t.Fatal(err)
		}
		for _, name := range []string{TokenFile, AddrFile} {
			if st, err := os.Stat(filepath.Join(dir, name)); err != nil || st.Mode().Perm() != c.files {
				t.Errorf("directory %v: %s has mode %v (%v), want %v", c.dir, name, st.Mode().Perm(), err, c.files)
			}
		}
		s.ln.Close()
	}
}
