// Package control is the client's local control API (DESIGN §7): the
// daemon serves it on loopback only, and `momonga status|tasks|...`, the
// local web page (client/webui, mounted with Server.Handle) and the
// screensaver use it. Like BOINC's GUI RPC password, a random token in a
// 0600 file in the data directory proves that a caller may read that
// directory, that is, that it is the volunteer (or root). A browser shows
// the token once, as Jupyter's page does (`momonga ui` opens the page with
// it), and then holds a cookie derived from it (auth.go).
package control

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/momonga-project/momonga/client/eventlog"
	"github.com/momonga-project/momonga/client/host"
	"github.com/momonga-project/momonga/client/idle"
	"github.com/momonga-project/momonga/client/prefs"
	"github.com/momonga-project/momonga/internal/atomicfile"
)

// Files in the data directory.
const (
	TokenFile = "control.token" // the token, hex, mode 0600 (0640: see fileMode)
	AddrFile  = "control.addr"  // host:port the daemon listens on
)

// fileMode is the mode of the token and address files: their owner's only,
// or their group's too when the data directory lets its group in and
// nobody else, as the packages make the service's (/var/lib/momonga, 0750,
// group momonga).
// Whoever the package added to that group then uses momonga's commands
// without sudo: a BOINC Manager locked out of its password file is one of
// BOINC's most common complaints on Linux. Nothing else in the directory
// is the group's to read.
func fileMode(dataDir string) os.FileMode {
	if st, err := os.Stat(dataDir); err == nil && st.Mode().Perm()&0o057 == 0o050 {
		return 0o640
	}
	return 0o600
}

// Status is the client at a glance.
type Status struct {
	Host          string           `json:"host"`
	Computing     bool             `json:"computing"`        // tasks may run now
	Reason        string           `json:"reason,omitempty"` // why not
	UserActive    bool             `json:"user_active"`
	UserSuspended bool             `json:"user_suspended"` // `momonga suspend`
	Running       int              `json:"running"`
	Suspended     int              `json:"suspended"`
	Queued        int              `json:"queued"`
	Slots         int              `json:"slots"`
	Projects      int              `json:"projects"`
	Benchmarking  bool             `json:"benchmarking,omitempty"` // the benchmarks are running
	Observation   idle.Observation `json:"observation"`
}

// Task is one task the client holds.
type Task struct {
	ID               string    `json:"id"`
	Project          string    `json:"project"`
	App              string    `json:"app"`
	State            string    `json:"state"`         // queued, running, suspended
	PID              int       `json:"pid,omitempty"` // of its worker process, while it has one
	Reason           string    `json:"reason,omitempty"`
	CPUSeconds       float64   `json:"cpu_seconds"`
	EstimatedSeconds float64   `json:"estimated_seconds"`
	Deadline         time.Time `json:"deadline"`
	// Progress is the fraction done its app last reported, 0 to 1.
	Progress float64 `json:"progress"`
	// RemainingSeconds is the running time it still needs: from its
	// progress once it reports some, else from its estimate.
	RemainingSeconds float64 `json:"remaining_seconds"`
	// Picture is true when its app publishes a picture of its state
	// (GET /v1/tasks/{id}/picture).
	Picture bool `json:"picture,omitempty"`
}

// Project is one attached project.
type Project struct {
	URL        string    `json:"url"`
	Name       string    `json:"name,omitempty"`
	Share      float64   `json:"share"`        // resource share
	ShareOfUse float64   `json:"share_of_use"` // its part of the CPU time used over about a day, 0..1
	Connected  bool      `json:"connected"`
	Tasks      int       `json:"tasks"`
	LastError  string    `json:"last_error,omitempty"`
	NextFetch  time.Time `json:"next_fetch,omitzero"`
	// Credit is what the project last said of the volunteer's credit;
	// nil until it has answered.
	Credit *Credit `json:"credit,omitempty"`
}

// Credit is a volunteer's credit at one project, in Cobblestones, with the
// recent average credit (RAC, per day).
type Credit struct {
	User       string    `json:"user,omitempty"` // the volunteer's name there; "" on an open project
	UserCredit float64   `json:"user_credit"`
	UserRAC    float64   `json:"user_rac"`
	HostCredit float64   `json:"host_credit"` // this computer's part
	HostRAC    float64   `json:"host_rac"`
	Team       string    `json:"team,omitempty"`
	At         time.Time `json:"at"` // when the project answered
}

// HostReport is what the client knows of its machine.
type HostReport struct {
	Info       host.Info       `json:"info"`
	Benchmarks host.Benchmarks `json:"benchmarks"`
}

// Backend is what the API controls: the daemon.
type Backend interface {
	Status() Status
	Tasks() []Task
	Projects() []Project
	Host() HostReport
	Benchmark(ctx context.Context) (host.Benchmarks, error)
	Suspend() Status
	Resume() Status
	Attach(ctx context.Context, url string, share float64) error
	Detach(url string) error
	Prefs() prefs.Prefs
	SetPref(key, value string) (prefs.Prefs, error)
	// AttachAccount attaches a project with the volunteer's account key
	// (the host gets credentials of its own), then as Attach.
	AttachAccount(ctx context.Context, url, accountKey string, share float64) error
	// Log is the newest n entries of the event log, oldest first.
	Log(n int) ([]eventlog.Entry, error)
	// Picture is the newest picture a task's app published, as PNG.
	Picture(task string) ([]byte, error)
	// Changes is closed when something a display shows has changed
	// (an event, a decision, a setting); ask again for the next change.
	Changes() <-chan struct{}
}

// Error is an error the API returns to a caller, with its HTTP status.
type Error struct {
	Status  int    `json:"-"`
	Message string `json:"error"`
}

func (e *Error) Error() string { return e.Message }

// ErrUnauthorized is returned to callers without the right token.
var ErrUnauthorized = errors.New("wrong or missing control token")

// Server serves the API.
type Server struct {
	backend Backend
	token   []byte
	session string // the browser's cookie value (auth.go)
	ln      net.Listener
	mux     *http.ServeMux
	http    *http.Server
	log     *slog.Logger
	dataDir string
}

// Listen prepares the API on addr, which must be a loopback address ("" is
// 127.0.0.1 on a free port). It keeps the data directory's token, or makes
// one, and writes the address where the command line finds it.
func Listen(dataDir, addr string, b Backend, logger *slog.Logger) (*Server, error) {
	if addr == "" {
		addr = "127.0.0.1:0"
	}
	hostPart, _, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, fmt.Errorf("control address %q: %w", addr, err)
	}
	if ip := net.ParseIP(hostPart); hostPart != "localhost" && (ip == nil || !ip.IsLoopback()) {
		return nil, fmt.Errorf("control address %q: the control API listens on loopback only (127.0.0.1 or ::1)", addr)
	}
	token, err := loadOrCreateToken(dataDir)
	if err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("control API: %w", err)
	}
	s := &Server{backend: b, token: token, session: sessionValue(token), ln: ln, log: logger, dataDir: dataDir}
	if err := atomicfile.Write(filepath.Join(dataDir, AddrFile), []byte(ln.Addr().String()+"\n"), fileMode(dataDir)); err != nil {
		ln.Close()
		return nil, fmt.Errorf("control API: %w", err)
	}
	s.mux = s.handler()
	// No WriteTimeout: the page's live updates are one long response.
	s.http = &http.Server{Handler: s.mux, ReadHeaderTimeout: 5 * time.Second, ReadTimeout: 10 * time.Second}
	return s, nil
}

// Addr is the address the API listens on.
func (s *Server) Addr() string { return s.ln.Addr().String() }

// Serve serves until ctx ends.
func (s *Server) Serve(ctx context.Context) error {
	done := make(chan struct{})
	defer close(done)
	go func() {
		select {
		case <-ctx.Done():
		case <-done:
		}
		sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_ = s.http.Shutdown(sctx)
	}()
	err := s.http.Serve(s.ln)
	os.Remove(filepath.Join(s.dataDir, AddrFile))
	if errors.Is(err, http.ErrServerClosed) {
		return nil
	}
	return err
}

func loadOrCreateToken(dataDir string) ([]byte, error) {
	path := filepath.Join(dataDir, TokenFile)
	mode := fileMode(dataDir)
	if b, err := os.ReadFile(path); err == nil {
		tok := bytes.TrimSpace(b)
		if len(tok) >= 32 {
			// Whatever else happened to the file, only its owner (and
			// the directory's group, if it is let in) reads it.
			if err := os.Chmod(path, mode); err != nil {
				return nil, fmt.Errorf("control token: %w", err)
			}
			return tok, nil
		}
	}
	var r [32]byte
	if _, err := rand.Read(r[:]); err != nil {
		return nil, err
	}
	tok := []byte(hex.EncodeToString(r[:]))
	if err := atomicfile.Write(path, append(tok, '\n'), mode); err != nil {
		return nil, fmt.Errorf("control token: %w", err)
	}
	return tok, nil
}

// Handle serves h at pattern (http.ServeMux's) behind the same checks as
// the API: loopback, Host and Origin, the token or the page's cookie. Call
// it before Serve.
func (s *Server) Handle(pattern string, h http.Handler) {
	s.mux.Handle(pattern, s.guard(h))
}

func (s *Server) handler() *http.ServeMux {
	mux := http.NewServeMux()
	get := func(path string, f func(r *http.Request) (any, error)) { mux.HandleFunc("GET "+path, s.wrap(f)) }
	post := func(path string, f func(r *http.Request) (any, error)) { mux.HandleFunc("POST "+path, s.wrap(f)) }
	b := s.backend
	get("/v1/status", func(*http.Request) (any, error) { return b.Status(), nil })
	get("/v1/tasks", func(*http.Request) (any, error) { return b.Tasks(), nil })
	get("/v1/projects", func(*http.Request) (any, error) { return b.Projects(), nil })
	get("/v1/host", func(*http.Request) (any, error) { return b.Host(), nil })
	get("/v1/prefs", func(*http.Request) (any, error) { return b.Prefs(), nil })
	post("/v1/benchmark", func(r *http.Request) (any, error) { return b.Benchmark(r.Context()) })
	post("/v1/suspend", func(*http.Request) (any, error) { return b.Suspend(), nil })
	post("/v1/resume", func(*http.Request) (any, error) { return b.Resume(), nil })
	post("/v1/attach", func(r *http.Request) (any, error) {
		var req AttachRequest
		if err := decode(r, &req); err != nil {
			return nil, err
		}
		if req.AccountKey != "" {
			if k, ok := b.(keyAttacher); ok {
				return k.AttachWithKey(r.Context(), req)
			}
			return struct{}{}, b.AttachAccount(r.Context(), req.URL, req.AccountKey, req.Share)
		}
		return struct{}{}, b.Attach(r.Context(), req.URL, req.Share)
	})
	get("/v1/log", func(r *http.Request) (any, error) {
		n := 200
		if q := r.URL.Query().Get("n"); q != "" {
			v, err := strconv.Atoi(q)
			if err != nil || v < 0 {
				return nil, &Error{Status: http.StatusBadRequest, Message: "n: give a number of entries (0 = all)"}
			}
			n = v
		}
		return b.Log(n)
	})
	mux.HandleFunc("GET /v1/tasks/{id}/picture", s.picture)
	post("/v1/detach", func(r *http.Request) (any, error) {
		var req AttachRequest
		if err := decode(r, &req); err != nil {
			return nil, err
		}
		return struct{}{}, b.Detach(req.URL)
	})
	post("/v1/prefs", func(r *http.Request) (any, error) {
		var req SetPrefRequest
		if err := decode(r, &req); err != nil {
			return nil, err
		}
		return b.SetPref(req.Key, req.Value)
	})
	return mux
}

// keyAttacher is a backend that attaches with an account key from a whole
// request (a host name, a TLS authority) and says what the project
// answered; the daemon is one.
type keyAttacher interface {
	AttachWithKey(ctx context.Context, req AttachRequest) (Attached, error)
}

// AttachRequest attaches or detaches a project. With an account key the
// client registers the host with the project itself, and keeps the
// credentials it gets in its data directory: the person's command needs no
// write access to it (a system service's is not theirs), and the client
// never reads the person's files (the project's TLS authority comes as
// text).
type AttachRequest struct {
	URL        string  `json:"url"`
	Share      float64 `json:"share,omitempty"`
	AccountKey string  `json:"account_key,omitempty"`
	Name       string  `json:"name,omitempty"` // host name shown by the project
	CA         string  `json:"ca,omitempty"`   // PEM of the project's TLS authority
}

// Attached is what a project said when the host attached with an account
// key.
type Attached struct {
	URL        string `json:"url"`
	Project    string `json:"project"`
	Host       string `json:"host"`
	User       string `json:"user,omitempty"`
	SigningKey string `json:"signing_key,omitempty"`
	// Reconnect: the project was attached already; the client connects
	// with the new credentials when it starts again.
	Reconnect bool `json:"reconnect,omitempty"`
}

// SetPrefRequest changes one preference.
type SetPrefRequest struct {
	Key   string `json:"key"`
	Value string `json:"value"`
}

func decode(r *http.Request, v any) error {
	if err := json.NewDecoder(io.LimitReader(r.Body, 64<<10)).Decode(v); err != nil {
		return &Error{Status: http.StatusBadRequest, Message: "malformed request: " + err.Error()}
	}
	return nil
}

// wrap checks that the caller is local and has the token, runs f and writes
// its answer as JSON.
func (s *Server) wrap(f func(r *http.Request) (any, error)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		if err := s.authorize(r); err != nil {
			writeJSON(w, err.Status, err)
			return
		}
		v, err := f(r)
		if err != nil {
			var e *Error
			if !errors.As(err, &e) {
				e = &Error{Status: http.StatusBadRequest, Message: err.Error()}
			}
			writeJSON(w, e.Status, e)
			return
		}
		writeJSON(w, http.StatusOK, v)
	}
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}
