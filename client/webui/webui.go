// Package webui is the volunteer's local web page (DESIGN §7): what the
// client is doing, the attached projects with the volunteer's credit, the
// tasks with their progress, why nothing runs when nothing does, the
// controls (suspend, resume, attach, detach, preferences, benchmarks) and
// the event log. The running client serves it on its control API's
// loopback address, behind the same checks (client/control: token once,
// then a cookie; Host and Origin), and `momonga ui` opens it.
//
// The page is rendered on the server and works without JavaScript: every
// control is a form that posts and comes back to the page. A few lines of
// plain JavaScript (ui.js) make it live: the server pushes the changing
// part, rendered by the same template, as server-sent events, and forms are
// sent in the background with their answer shown in place.
package webui

import (
	"bytes"
	"context"
	"embed"
	"encoding/json"
	"fmt"
	"html/template"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/momonga-project/momonga/client/control"
	"github.com/momonga-project/momonga/client/eventlog"
	"github.com/momonga-project/momonga/client/host"
	"github.com/momonga-project/momonga/client/prefs"
)

//go:embed page.html ui.js ui.css
var files embed.FS

// Pacing of the live updates: the page is sent what changed at once (the
// backend's Changes), and otherwise every refresh while tasks move; a
// comment every keepAlive keeps proxies and the browser from giving up.
const (
	refresh   = time.Second
	keepAlive = 15 * time.Second
	logLines  = 40
)

// UI serves the page.
type UI struct {
	b   control.Backend
	now func() time.Time
	// templates are parsed at the first request, so that a client nobody
	// looks at holds none of it in memory.
	templates func() *template.Template
}

// New serves the page for b.
func New(b control.Backend) *UI {
	return &UI{b: b, now: time.Now, templates: sync.OnceValue(parse)}
}

func parse() *template.Template {
	return template.Must(template.New("").Funcs(template.FuncMap{
		"dur":     duration,
		"pct":     func(f float64) string { return strconv.FormatFloat(100*f, 'f', 1, 64) },
		"num":     func(f float64) string { return strconv.FormatFloat(f, 'f', 2, 64) },
		"when":    func(t time.Time) string { return t.Local().Format("2006-01-02 15:04") },
		"clock":   func(t time.Time) string { return t.Local().Format("15:04:05") },
		"short":   func(s string) string { return short(s, 12) },
		"picture": func(id string) string { return "/v1/tasks/" + url.PathEscape(id) + "/picture" },
		"divm":    func(f float64) float64 { return f / 1e6 },
		"divg":    func(f float64) float64 { return f / 1e9 },
	}).ParseFS(files, "page.html"))
}

func short(s string, n int) string {
	if len(s) > n {
		return s[:n] + "…"
	}
	return s
}

// duration is a time span for a person: 1 h 02 min, 3 min 05 s, 12 s.
func duration(secs float64) string {
	d := time.Duration(secs * float64(time.Second)).Round(time.Second)
	switch {
	case d >= time.Hour:
		return fmt.Sprintf("%d h %02d min", int(d.Hours()), int(d.Minutes())%60)
	case d >= time.Minute:
		return fmt.Sprintf("%d min %02d s", int(d.Minutes()), int(d.Seconds())%60)
	}
	return fmt.Sprintf("%d s", int(d.Seconds()))
}

// ServeHTTP routes the page's requests.
func (u *UI) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	switch {
	case r.URL.Path == "/" && (r.Method == http.MethodGet || r.Method == http.MethodHead):
		u.page(w, r)
	case r.URL.Path == "/ui.js" || r.URL.Path == "/ui.css":
		u.static(w, r)
	case r.URL.Path == "/ui/live" && r.Method == http.MethodGet:
		u.live(w, r)
	case r.URL.Path == "/ui/do" && r.Method == http.MethodPost:
		u.do(w, r)
	default:
		http.NotFound(w, r)
	}
}

func (u *UI) static(w http.ResponseWriter, r *http.Request) {
	b, err := files.ReadFile(strings.TrimPrefix(r.URL.Path, "/"))
	if err != nil {
		http.NotFound(w, r)
		return
	}
	ct := "text/css; charset=utf-8"
	if strings.HasSuffix(r.URL.Path, ".js") {
		ct = "text/javascript; charset=utf-8"
	}
	w.Header().Set("Content-Type", ct)
	w.Header().Set("Cache-Control", "no-cache")
	_, _ = w.Write(b)
}

// view is what the template shows.
type view struct {
	Status   control.Status
	Why      string // why nothing runs, or ""
	Projects []control.Project
	Tasks    []control.Task
	Log      []eventlog.Entry
	LogError string
	Prefs    []prefView
	Bench    host.Benchmarks
	Message  string
	Error    string
	Now      time.Time
}

type prefView struct {
	prefs.Key
	Value string
}

func (u *UI) liveView() view {
	v := view{Status: u.b.Status(), Projects: u.b.Projects(), Tasks: u.b.Tasks(), Now: u.now()}
	v.Why = why(v.Status, v.Tasks)
	var err error
	if v.Log, err = u.b.Log(logLines); err != nil {
		v.LogError = err.Error()
	}
	// Newest first, as a person reads a log on a page.
	for i, j := 0, len(v.Log)-1; i < j; i, j = i+1, j-1 {
		v.Log[i], v.Log[j] = v.Log[j], v.Log[i]
	}
	return v
}

// why says why nothing computes, when nothing does.
func why(s control.Status, tasks []control.Task) string {
	switch {
	case s.Benchmarking:
		return "running the benchmarks"
	case !s.Computing && s.Reason != "":
		return "suspended: " + s.Reason
	case s.Projects == 0:
		return "no project attached: attach one below"
	case len(tasks) == 0:
		return "no tasks: waiting for work from the projects"
	case s.Running == 0:
		for _, t := range tasks {
			if t.State == "suspended" && t.Reason != "" {
				return "tasks suspended: " + t.Reason
			}
		}
		return "waiting to start a task"
	}
	return ""
}

func (u *UI) page(w http.ResponseWriter, r *http.Request) {
	v := u.liveView()
	p := u.b.Prefs()
	for _, k := range prefs.Keys {
		val, _ := p.Get(k.Name)
		v.Prefs = append(v.Prefs, prefView{Key: k, Value: val})
	}
	v.Bench = u.b.Host().Benchmarks
	v.Message, v.Error = r.URL.Query().Get("msg"), r.URL.Query().Get("err")
	u.render(w, "page", v)
}

func (u *UI) render(w http.ResponseWriter, name string, v view) {
	var buf bytes.Buffer
	if err := u.templates().ExecuteTemplate(&buf, name, v); err != nil {
		http.Error(w, "render page: "+err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	_, _ = w.Write(buf.Bytes())
}

// live streams the changing part of the page as server-sent events, each
// the part's HTML, sent when it differs from the last one sent.
func (u *UI) live(w http.ResponseWriter, r *http.Request) {
	fl, ok := w.(http.Flusher)
	if !ok {
		http.Error(w, "streaming unsupported", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-store")
	tick := time.NewTicker(refresh)
	defer tick.Stop()
	ping := time.NewTicker(keepAlive)
	defer ping.Stop()
	var last []byte
	for {
		changes := u.b.Changes()
		var buf bytes.Buffer
		if err := u.templates().ExecuteTemplate(&buf, "live", u.liveView()); err != nil {
			return
		}
		if !bytes.Equal(buf.Bytes(), last) {
			last = bytes.Clone(buf.Bytes())
			var ev bytes.Buffer
			ev.WriteString("event: live\n")
			for line := range strings.SplitSeq(buf.String(), "\n") {
				ev.WriteString("data: " + line + "\n")
			}
			ev.WriteString("\n")
			if _, err := w.Write(ev.Bytes()); err != nil {
				return
			}
			fl.Flush()
		}
		select {
		case <-r.Context().Done():
			return
		case <-changes:
		case <-tick.C:
		case <-ping.C:
			if _, err := w.Write([]byte(": keep-alive\n\n")); err != nil {
				return
			}
			fl.Flush()
		}
	}
}

// do carries out a form's action. A script's request (Accept:
// application/json) is answered with {"message"} or {"error"}; a plain
// form's with a redirect back to the page, which shows the answer.
func (u *UI) do(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, 64<<10)
	if err := r.ParseForm(); err != nil {
		u.answer(w, r, "", fmt.Errorf("malformed form: %w", err))
		return
	}
	msg, err := u.act(r.Context(), r.PostForm)
	u.answer(w, r, msg, err)
}

func (u *UI) act(ctx context.Context, f url.Values) (string, error) {
	switch f.Get("do") {
	case "suspend":
		u.b.Suspend()
		return "suspended: no task runs until you resume", nil
	case "resume":
		u.b.Resume()
		return "resumed: tasks run as the preferences allow", nil
	case "benchmark":
		b, err := u.b.Benchmark(ctx)
		if err != nil {
			return "", fmt.Errorf("benchmarks: %w", err)
		}
		return fmt.Sprintf("benchmarks: %.0f MFLOPS, %.0f MIPS, %.1f GB/s memory, %.0f M integers sieved/s in WebAssembly",
			b.FLOPS/1e6, b.IOPS/1e6, b.MemBytesPerSec/1e9, b.WasmOPS/1e6), nil
	case "attach":
		target := strings.TrimSpace(f.Get("url"))
		share := 0.0
		if s := strings.TrimSpace(f.Get("share")); s != "" {
			v, err := strconv.ParseFloat(s, 64)
			if err != nil {
				return "", fmt.Errorf("resource share %q: give a number from 1 to 1000000", s)
			}
			share = v
		}
		if target == "" {
			return "", fmt.Errorf("give the project's address, e.g. nats://project.example.org:4222")
		}
		var err error
		if key := strings.TrimSpace(f.Get("account_key")); key != "" {
			err = u.b.AttachAccount(ctx, target, key, share)
		} else {
			err = u.b.Attach(ctx, target, share)
		}
		if err != nil {
			return "", err
		}
		return "attached " + target, nil
	case "detach":
		if err := u.b.Detach(f.Get("url")); err != nil {
			return "", err
		}
		return "detached " + f.Get("url"), nil
	case "pref":
		key, value := f.Get("key"), strings.TrimSpace(f.Get("value"))
		if _, err := u.b.SetPref(key, value); err != nil {
			return "", err
		}
		return key + " = " + value, nil
	}
	return "", fmt.Errorf("unknown action %q", f.Get("do"))
}

func (u *UI) answer(w http.ResponseWriter, r *http.Request, msg string, err error) {
	if strings.Contains(r.Header.Get("Accept"), "application/json") {
		w.Header().Set("Content-Type", "application/json")
		if err != nil {
			w.WriteHeader(http.StatusBadRequest)
			_ = json.NewEncoder(w).Encode(map[string]string{"error": err.Error()})
			return
		}
		_ = json.NewEncoder(w).Encode(map[string]string{"message": msg})
		return
	}
	q := url.Values{}
	if err != nil {
		q.Set("err", err.Error())
	} else {
		q.Set("msg", msg)
	}
	http.Redirect(w, r, "/?"+q.Encode(), http.StatusSeeOther)
}
