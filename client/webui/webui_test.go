package webui

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/momonga-project/momonga/client/control"
	"github.com/momonga-project/momonga/client/eventlog"
	"github.com/momonga-project/momonga/client/host"
	"github.com/momonga-project/momonga/client/prefs"
)

// backend is a client as the page sees it, in memory.
type backend struct {
	prefs     prefs.Prefs
	suspended bool
	attached  []string
}

func (b *backend) Status() control.Status {
	s := control.Status{Host: "h1", Computing: !b.suspended, UserSuspended: b.suspended, Projects: 1, Running: 1}
	if b.suspended {
		s.Reason = "suspended by the volunteer"
	}
	return s
}
func (b *backend) Tasks() []control.Task {
	return []control.Task{{ID: "wu1_0", App: "mandel", State: "running", Progress: 0.25, CPUSeconds: 30, RemainingSeconds: 90, Picture: true}}
}
func (b *backend) Projects() []control.Project {
	return []control.Project{{URL: "nats://p:4222", Name: "p", Connected: true, Credit: &control.Credit{User: "ada", UserCredit: 12.5}}}
}
func (b *backend) Host() control.HostReport { return control.HostReport{} }
func (b *backend) Benchmark(context.Context) (host.Benchmarks, error) {
	return host.Benchmarks{FLOPS: 1e9}, nil
}
func (b *backend) Suspend() control.Status { b.suspended = true; return b.Status() }
func (b *backend) Resume() control.Status  { b.suspended = false; return b.Status() }
func (b *backend) Attach(_ context.Context, u string, _ float64) error {
	b.attached = append(b.attached, u)
	return nil
}
func (b *backend) AttachAccount(_ context.Context, u, key string, _ float64) error {
	if key != "good" {
		return errors.New("the project refused the account key")
	}
	b.attached = append(b.attached, u)
	return nil
}
func (b *backend) Detach(string) error { return nil }
func (b *backend) Prefs() prefs.Prefs  { return b.prefs }
func (b *backend) SetPref(k, v string) (prefs.Prefs, error) {
	p := b.prefs
	if err := p.Set(k, v); err != nil {
		return b.prefs, err
	}
	b.prefs = p
	return p, nil
}
func (b *backend) Log(int) ([]eventlog.Entry, error) {
	return []eventlog.Entry{{Message: "task started", Attrs: []eventlog.Attr{{Key: "task", Value: "wu1_0"}}}}, nil
}
func (b *backend) Picture(string) ([]byte, error) { return nil, control.ErrNoPicture }
func (b *backend) Changes() <-chan struct{}       { return make(chan struct{}) }

// post sends a form as a browser without JavaScript does and follows the
// redirect back to the page.
func post(t *testing.T, srv *httptest.Server, form url.Values) string {
	t.Helper()
	resp, err := srv.Client().PostForm(srv.URL+"/ui/do", form)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 || resp.Request.URL.Path != "/" {
		t.Fatalf("%v: %s at %s", form, resp.Status, resp.Request.URL)
	}
	return string(b)
}

func TestWorksWithoutJavaScript(t *testing.T) {
	b := &backend{prefs: prefs.Defaults()}
	srv := httptest.NewServer(New(b))
	defer srv.Close()
	page := post(t, srv, url.Values{"do": {"suspend"}})
	for _, want := range []string{"suspended: no task runs until you resume", `id="resume"`, "suspended: suspended by the volunteer",
		"wu1_0", "25.0%", "1 min 30 s", "12.50", "as ada", "task started", `src="/v1/tasks/wu1_0/picture"`} {
		if !strings.Contains(page, want) {
			t.Errorf("page after suspend lacks %q", want)
		}
	}
	if !b.suspended {
		t.Error("not suspended")
	}
	if page := post(t, srv, url.Values{"do": {"pref"}, "key": {"cpu_usage_limit"}, "value": {"0"}}); !strings.Contains(page, `class="answer error"`) || !strings.Contains(page, "from 1 to 100") {
		t.Error("an out-of-range preference is not refused on the page")
	}
	post(t, srv, url.Values{"do": {"pref"}, "key": {"cpu_usage_limit"}, "value": {"70"}})
	if b.prefs.CPUUsageLimit != 70 {
		t.Errorf("cpu_usage_limit %v", b.prefs.CPUUsageLimit)
	}
	if page := post(t, srv, url.Values{"do": {"attach"}, "url": {"nats://q:4222"}, "account_key": {"bad"}}); !strings.Contains(page, "refused the account key") {
		t.Error("a refused account key is not shown")
	}
	post(t, srv, url.Values{"do": {"attach"}, "url": {"nats://q:4222"}, "account_key": {"good"}})
	if len(b.attached) != 1 {
		t.Errorf("attached %v", b.attached)
	}
	if page := post(t, srv, url.Values{"do": {"benchmark"}}); !strings.Contains(page, "1000 MFLOPS") {
		t.Error("the benchmark figures are not shown")
	}
}

func TestScriptGetsJSONAndLiveUpdates(t *testing.T) {
	b := &backend{prefs: prefs.Defaults()}
	srv := httptest.NewServer(New(b))
	defer srv.Close()
	req, _ := http.NewRequest("POST", srv.URL+"/ui/do", strings.NewReader("do=pref&key=cpu_usage_limit&value=500"))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Accept", "application/json")
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest || !strings.Contains(string(body), `"error"`) {
		t.Errorf("script's refused preference: %s %s", resp.Status, body)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	req, _ = http.NewRequestWithContext(ctx, "GET", srv.URL+"/ui/live", nil)
	resp, err = srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if ct := resp.Header.Get("Content-Type"); ct != "text/event-stream" {
		t.Errorf("live content type %q", ct)
	}
	buf := make([]byte, 4096)
	var got strings.Builder
	for !strings.Contains(got.String(), "\n\n") {
		n, err := resp.Body.Read(buf)
		got.Write(buf[:n])
		if err != nil {
			t.Fatalf("live stream: %v after %q", err, got.String())
		}
	}
	if s := got.String(); !strings.HasPrefix(s, "event: live\ndata: ") || !strings.Contains(s, "data: ") || !strings.Contains(s, "wu1_0") {
		t.Errorf("first event %q", s)
	}
}
