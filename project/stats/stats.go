// Package stats is the project's stats site (DESIGN §9): server-rendered
// pages readable without JavaScript (the front page, leaderboards of users,
// teams and hosts, a page for each of them, apps, batches, search) with
// SVG charts, the same data as JSON under /api/v1, Prometheus metrics at
// /metrics and BOINC's statistics exports under /stats/ (export.go).
//
// Pages ask a Source (project/reads) for what they show; each answer is a
// lookup, so a page costs the same with ten hosts or a million.
package stats

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"
)

// Config is what the site serves.
type Config struct {
	Source Source
	// Output reads a canonical output by its hash, for the pictures of a
	// batch's results; nil: no pictures.
	Output func(ctx context.Context, hash string) ([]byte, error)
	// Exports is the directory ExportDir writes to; "" serves none.
	Exports string
	// Measure reads the metrics; nil serves no /metrics.
	Measure func(ctx context.Context) (Measures, error)
	Logger  *slog.Logger
}

// Page sizes.
const (
	BoardPage    = 50  // leaderboard lines per page
	MaxBoardPage = 100 // the most the API gives at once
	SearchLimit  = 20
	maxOffset    = 1 << 30
)

// Timeout bounds how long a page waits for the project's state.
const Timeout = 5 * time.Second

type site struct {
	cfg      Config
	pictures pictureCache
}

// Handler serves the site.
func Handler(cfg Config) http.Handler {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	s := &site{cfg: cfg}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", s.handle("overview", s.overview))
	mux.HandleFunc("GET /apps", s.handle("apps", s.apps))
	mux.HandleFunc("GET /search", s.handle("search", s.search))
	mux.HandleFunc("GET /batches/{name}", s.handle("batch", s.batch))
	mux.HandleFunc("GET /batches/{name}/pictures/{file}", s.picture)
	mux.HandleFunc("GET /api/v1/overview", s.handle("", s.overview))
	mux.HandleFunc("GET /api/v1/apps", s.handle("", s.apps))
	mux.HandleFunc("GET /api/v1/search", s.handle("", s.search))
	mux.HandleFunc("GET /api/v1/batches/{name}", s.handle("", s.batch))
	// What /api/status was: now the overview, not the whole state.
	mux.HandleFunc("GET /api/status", s.handle("", s.overview))
	for _, k := range []Kind{Users, Teams, Hosts} {
		mux.HandleFunc("GET /"+string(k), s.handle("board", s.board(k, false)))
		mux.HandleFunc("GET /api/v1/"+string(k), s.handle("", s.board(k, true)))
		mux.HandleFunc("GET /"+string(k)+"/{id}", s.handle(string(k)[:4], s.account(k)))
		mux.HandleFunc("GET /api/v1/"+string(k)+"/{id}", s.handle("", s.account(k)))
	}
	mux.HandleFunc("GET /stats/{file}", s.export)
	if cfg.Measure != nil {
		mux.Handle("GET /metrics", metricsHandler(cfg.Measure, cfg.Logger))
	}
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		s.fail(w, r, api(r), &httpError{http.StatusNotFound, "There is no page at " + r.URL.Path + "."})
	})
	return s.recover(mux)
}

// httpError is an answer other than a page: its status and a sentence.
type httpError struct {
	status int
	msg    string
}

func (e *httpError) Error() string { return e.msg }

func badRequest(format string, args ...any) error {
	return &httpError{http.StatusBadRequest, fmt.Sprintf(format, args...)}
}

func api(r *http.Request) bool {
	return strings.HasPrefix(r.URL.Path, "/api/")
}

// handle serves what load returns: as the template page for the site, as
// JSON for the API (page "").
func (s *site) handle(page string, load func(*http.Request) (any, error)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), Timeout)
		defer cancel()
		v, err := load(r.WithContext(ctx))
		if err != nil {
			s.fail(w, r, page == "", err)
			return
		}
		if page == "" {
			w.Header().Set("Content-Type", "application/json")
			w.Header().Set("Cache-Control", "no-cache")
			_ = json.NewEncoder(w).Encode(v)
			return
		}
		s.render(w, http.StatusOK, page, v)
	}
}

// fail answers an error: a 400 for a bad parameter, a 404 for what does
// not exist, a 503 while the project cannot answer; never a stack trace.
func (s *site) fail(w http.ResponseWriter, r *http.Request, asJSON bool, err error) {
	status, msg := http.StatusServiceUnavailable, "The project cannot answer now; try again in a few seconds."
	var he *httpError
	switch {
	case errors.As(err, &he):
		status, msg = he.status, he.msg
	case errors.Is(err, ErrNotFound):
		status, msg = http.StatusNotFound, "There is no such "+strings.TrimSuffix(strings.Split(strings.TrimPrefix(strings.TrimPrefix(r.URL.Path, "/api/v1"), "/"), "/")[0], "es")+" here."
	default:
		s.cfg.Logger.Warn("stats page", "path", r.URL.Path, "err", err)
	}
	if asJSON {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		_ = json.NewEncoder(w).Encode(map[string]any{"error": msg, "status": status})
		return
	}
	s.render(w, status, "error", errorPage{Status: status, Title: http.StatusText(status), Message: msg})
}

type errorPage struct {
	Status         int
	Title, Message string
}

// recover turns a panic into a 500 page; the stack goes to the log.
func (s *site) recover(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer func() {
			if v := recover(); v != nil {
				if v == http.ErrAbortHandler {
					panic(v)
				}
				s.cfg.Logger.Error("stats page panicked", "path", r.URL.Path, "panic", v)
				s.render(w, http.StatusInternalServerError, "error", errorPage{Status: 500, Title: "Internal Server Error", Message: "Something went wrong on this page; it has been logged."})
			}
		}()
		next.ServeHTTP(w, r)
	})
}

func (s *site) overview(r *http.Request) (any, error) { return s.cfg.Source.Overview(r.Context()) }
func (s *site) apps(r *http.Request) (any, error)     { return s.cfg.Source.Apps(r.Context()) }

func (s *site) search(r *http.Request) (any, error) {
	q, err := query(r, "q", 64)
	if err != nil {
		return nil, err
	}
	if strings.TrimSpace(q) == "" {
		return SearchPage{Users: []Ref{}, Teams: []Ref{}}, nil
	}
	return s.cfg.Source.Search(r.Context(), q, SearchLimit)
}

// query reads a text parameter: at most max bytes of UTF-8, once.
func query(r *http.Request, name string, max int) (string, error) {
	vs := r.URL.Query()[name]
	switch {
	case len(vs) == 0:
		return "", nil
	case len(vs) > 1:
		return "", badRequest("Give %s once.", name)
	case len(vs[0]) > max || !utf8.ValidString(vs[0]):
		return "", badRequest("%s must be text of at most %d bytes.", name, max)
	}
	return vs[0], nil
}

// intParam reads an integer parameter within [lo, hi], def when absent.
func intParam(r *http.Request, name string, def, lo, hi int) (int, error) {
	v, err := query(r, name, 12)
	if err != nil || v == "" {
		return def, err
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < lo || n > hi {
		return 0, badRequest("%s must be a whole number from %d to %d, not %q.", name, lo, hi, v)
	}
	return n, nil
}

// boardView is a leaderboard page with its links.
type boardView struct {
	Board
	Page, Pages int
}

func (s *site) board(k Kind, asAPI bool) func(*http.Request) (any, error) {
	return func(r *http.Request) (any, error) {
		by, err := query(r, "by", 16)
		if err != nil {
			return nil, err
		}
		switch Order(by) {
		case "":
			by = string(ByCredit)
		case ByCredit, ByRAC:
		default:
			return nil, badRequest("by must be credit or rac, not %q.", by)
		}
		offset, limit := 0, BoardPage
		page := 1
		if asAPI {
			if offset, err = intParam(r, "offset", 0, 0, maxOffset); err != nil {
				return nil, err
			}
			if limit, err = intParam(r, "limit", BoardPage, 1, MaxBoardPage); err != nil {
				return nil, err
			}
		} else {
			if page, err = intParam(r, "page", 1, 1, maxOffset/BoardPage); err != nil {
				return nil, err
			}
			offset = (page - 1) * BoardPage
		}
		b, err := s.cfg.Source.Board(r.Context(), k, Order(by), offset, limit)
		if err != nil || asAPI {
			return b, err
		}
		return boardView{Board: b, Page: page, Pages: max(1, (b.Total+BoardPage-1)/BoardPage)}, nil
	}
}

func (s *site) account(k Kind) func(*http.Request) (any, error) {
	return func(r *http.Request) (any, error) {
		raw := r.PathValue("id")
		id, err := strconv.ParseUint(raw, 10, 64)
		if err != nil || id == 0 {
			return nil, badRequest("%q is not a %s id: ids are whole numbers from 1.", raw, strings.TrimSuffix(string(k), "s"))
		}
		switch k {
		case Users:
			return s.cfg.Source.User(r.Context(), id)
		case Teams:
			return s.cfg.Source.Team(r.Context(), id)
		}
		return s.cfg.Source.Host(r.Context(), id)
	}
}

func (s *site) batch(r *http.Request) (any, error) {
	name := r.PathValue("name")
	if !utf8.ValidString(name) || len(name) > 128 {
		return nil, badRequest("That is not a batch name.")
	}
	p, err := s.cfg.Source.Batch(r.Context(), name)
	if err != nil {
		return nil, err
	}
	// Pictures only for an app whose outputs are images: the first one
	// says.
	if len(p.Pictures) > 0 {
		if _, err := s.pictures.png(r.Context(), s.cfg.Output, p.Pictures[0].Output); err != nil {
			p.Pictures = nil
		}
	}
	return p, nil
}

// picture serves /batches/NAME/pictures/I.png: the I-th picture of the
// batch's page.
func (s *site) picture(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), Timeout)
	defer cancel()
	file := r.PathValue("file")
	i, err := strconv.Atoi(strings.TrimSuffix(file, ".png"))
	if err != nil || !strings.HasSuffix(file, ".png") || i < 0 {
		s.fail(w, r, false, badRequest("Pictures are named by their place on the batch's page: 0.png, 1.png, ..."))
		return
	}
	p, err := s.cfg.Source.Batch(ctx, r.PathValue("name"))
	if err == nil && i >= len(p.Pictures) {
		err = ErrNotFound
	}
	var png []byte
	if err == nil {
		png, err = s.pictures.png(ctx, s.cfg.Output, p.Pictures[i].Output)
	}
	if err != nil {
		s.fail(w, r, false, err)
		return
	}
	w.Header().Set("Content-Type", "image/png")
	w.Header().Set("Cache-Control", "public, max-age=86400")
	_, _ = w.Write(png)
}

// pictureCache keeps the PNG of recent outputs: a canonical output never
// changes, so neither does its picture.
type pictureCache struct {
	mu sync.Mutex
	m  map[string][]byte
}

const pictureCacheSize = 256

func (c *pictureCache) png(ctx context.Context, output func(context.Context, string) ([]byte, error), hash string) ([]byte, error) {
	c.mu.Lock()
	b, ok := c.m[hash]
	c.mu.Unlock()
	if ok {
		if b == nil {
			return nil, &httpError{http.StatusNotFound, "That result is not a picture."}
		}
		return b, nil
	}
	if output == nil {
		return nil, ErrNotFound
	}
	raw, err := output(ctx, hash)
	if err != nil {
		return nil, err
	}
	png, perr := PGMToPNG(raw)
	c.mu.Lock()
	if c.m == nil || len(c.m) >= pictureCacheSize {
		c.m = map[string][]byte{}
	}
	c.m[hash] = png
	c.mu.Unlock()
	if perr != nil {
		return nil, &httpError{http.StatusNotFound, "That result is not a picture."}
	}
	return png, nil
}

// export serves a file of the current export.
func (s *site) export(w http.ResponseWriter, r *http.Request) {
	file := r.PathValue("file")
	dir := CurrentExport(s.cfg.Exports)
	if !slices.Contains(ExportFiles, file) || dir == "" {
		s.fail(w, r, false, &httpError{http.StatusNotFound, "The statistics exports are user.gz, team.gz, host.gz and tables.xml, once the first has been written."})
		return
	}
	f, err := os.Open(filepath.Join(dir, file))
	if err != nil {
		s.fail(w, r, false, &httpError{http.StatusNotFound, "That export is not there yet."})
		return
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		s.fail(w, r, false, err)
		return
	}
	if strings.HasSuffix(file, ".gz") {
		w.Header().Set("Content-Type", "application/gzip")
	} else {
		w.Header().Set("Content-Type", "application/xml")
	}
	http.ServeContent(w, r, file, st.ModTime(), f)
}

// pageURL links a leaderboard page.
func pageURL(k, by any, page int) string {
	v := url.Values{}
	if b := fmt.Sprint(by); b != string(ByCredit) {
		v.Set("by", b)
	}
	if page > 1 {
		v.Set("page", strconv.Itoa(page))
	}
	if len(v) == 0 {
		return "/" + fmt.Sprint(k)
	}
	return "/" + fmt.Sprint(k) + "?" + v.Encode()
}
