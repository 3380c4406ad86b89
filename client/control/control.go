// Package control is the client's local control API (DESIGN §7): the
// daemon serves it on loopback only, and `momonga status|tasks|...` and the
// screensaver use it. Like BOINC's GUI RPC password, a random token in a
// 0600 file in the data directory proves that a caller may read that
// directory, that is, that it is the volunteer (or root).
package control

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/subtle"
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
	"strings"
	"time"

	"github.com/momonga-project/momonga/client/host"
	"github.com/momonga-project/momonga/client/idle"
	"github.com/momonga-project/momonga/client/prefs"
	"github.com/momonga-project/momonga/internal/atomicfile"
)

// Files in the data directory.
const (
	TokenFile = "control.token" // the token, hex, mode 0600
	AddrFile  = "control.addr"  // host:port the daemon listens on
)

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
	ln      net.Listener
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
	s := &Server{backend: b, token: token, ln: ln, log: logger, dataDir: dataDir}
	if err := atomicfile.Write(filepath.Join(dataDir, AddrFile), []byte(ln.Addr().String()+"\n"), 0o600); err != nil {
		ln.Close()
		return nil, fmt.Errorf("control API: %w", err)
	}
	s.http = &http.Server{Handler: s.handler(), ReadHeaderTimeout: 5 * time.Second, ReadTimeout: 10 * time.Second}
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
	if b, err := os.ReadFile(path); err == nil {
		tok := bytes.TrimSpace(b)
		if len(tok) >= 32 {
			// Whatever else happened to the file, only its owner reads it.
			if err := os.Chmod(path, 0o600); err != nil {
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
	if err := atomicfile.Write(path, append(tok, '\n'), 0o600); err != nil {
		return nil, fmt.Errorf("control token: %w", err)
	}
	return tok, nil
}

func (s *Server) handler() http.Handler {
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
		return struct{}{}, b.Attach(r.Context(), req.URL, req.Share)
	})
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

// AttachRequest attaches or detaches a project.
type AttachRequest struct {
	URL   string  `json:"url"`
	Share float64 `json:"share,omitempty"`
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

func (s *Server) authorize(r *http.Request) *Error {
	if host, _, err := net.SplitHostPort(r.RemoteAddr); err != nil || !net.ParseIP(host).IsLoopback() {
		return &Error{Status: http.StatusForbidden, Message: "the control API answers this machine only"}
	}
	// A web page the volunteer visits could make the browser send requests
	// here through a name that resolves to 127.0.0.1; it cannot set the
	// Host header to a loopback address, so such requests stop here.
	if h, _, err := net.SplitHostPort(r.Host); err != nil || (h != "localhost" && !net.ParseIP(h).IsLoopback()) {
		return &Error{Status: http.StatusForbidden, Message: "the control API answers requests to a loopback address only"}
	}
	got, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if !ok || subtle.ConstantTimeCompare([]byte(got), s.token) != 1 {
		s.log.Warn("control request refused: wrong or missing token", "path", r.URL.Path)
		return &Error{Status: http.StatusUnauthorized, Message: ErrUnauthorized.Error() + ": momonga reads it from " + TokenFile + " in the data directory"}
	}
	return nil
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}
