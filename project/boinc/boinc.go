// Package boinc lets stock BOINC clients compute for a momonga project
// (DESIGN §10): it speaks BOINC's HTTP protocol — the master page, the
// scheduler RPC in XML, file downloads, BOINC's upload handler and the
// account look-up and creation of the BOINC Manager's attach wizard — and
// maps each BOINC request onto the requests a momonga volunteer makes
// (attach, hello, beat, result, work), sent through the project's gateway
// into the scheduler's log. There is one scheduler and one state for both
// kinds of host: a BOINC host is a host of its user like any other, its
// results are validated against other hosts' and its credit counted alike.
//
// What a BOINC client runs is the momonga runner built for its platform
// (cmd/momonga-boinc-app), one native app version per platform that runs
// every momonga app's WebAssembly module. The client runs only files signed
// by the project's BOINC code-signing key (codesign.go); as in BOINC, they
// are signed once, where the key is, when an app is added (SignApp, by
// `momonga-project app add`), the signatures travel in the app's entry in
// the scheduler's log, and this package sends them on: it holds only the
// public key, so the private one may be kept offline.
//
// The BOINC side reaches the project only through the small interfaces
// below, so that its tests run on vpeer's in-memory log, blobs.Mem and a
// gateway with no NATS server.
package boinc

import (
	"context"
	"crypto/hmac"
	"crypto/rsa"
	"crypto/sha256"
	"errors"
	"fmt"
	"hash/fnv"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	wu "github.com/momonga-project/momonga/workunits"
)

// Gateway carries a request to the project as a momonga volunteer's is
// carried: a subject of DESIGN §4 (vol.H.op, attach.K, adm.cmd) and its
// body, answered by the gateway or a member of the scheduler.
type Gateway interface {
	Request(ctx context.Context, subject string, body []byte) ([]byte, error)
}

// Directory reads the project's state: who holds an account key, which host
// authenticates with a key, and the status with its credit.
type Directory interface {
	UserByKeyHash(h wu.Hash) (string, bool)
	// CodeSignature is the code signature an app was added with for the
	// file whose md5 is sum.
	CodeSignature(sum string) (string, bool)
	HostByNKey(nkey string) (wu.HostCredential, bool)
	Status() wu.StatusReply
	Accounts() wu.AccountsReply
}

// Blobs is the project's blob store, read for downloads.
type Blobs interface {
	Size(ctx context.Context, h wu.Hash) (int64, bool, error)
	Get(ctx context.Context, h wu.Hash) ([]byte, error)
}

// Uploads stores a finished upload in the blob store, as the gateway's
// chunked uploads do (blobs.Uploads, blobs.MemUploads).
type Uploads interface {
	Chunk(ctx context.Context, uploader string, h wu.Hash, size, offset int64, data []byte) (int64, error)
}

// Config connects the BOINC side to its project.
type Config struct {
	// URL is the project's master URL as BOINC clients are given it, e.g.
	// "http://project.example.org/"; it ends with "/".
	URL         string
	ProjectName string
	Gateway     Gateway
	Directory   Directory
	Blobs       Blobs
	Uploads     Uploads
	// CodeSignKey is the public half of the key that signed the app
	// versions' files (codesign.go): clients are given it, and the stored
	// signatures are checked with it before they are sent.
	CodeSignKey *rsa.PublicKey
	// Runners are the app's executables, by BOINC platform name
	// (LoadRunners).
	Runners map[string]Runner
	// Secret keys what the BOINC side derives: the tokens that bind an
	// upload to the host it was assigned to, the keys BOINC hosts attach
	// with, and the account keys of accounts made through
	// create_account.php. At least 32 bytes; the same on every server of a
	// project.
	Secret []byte
	// UploadDir stages uploads until they are whole.
	UploadDir string
	// RPCInterval is how often a client with tasks contacts the scheduler
	// (BOINC's next_rpc_delay): its reports of the tasks it holds are their
	// heartbeats. Default 10 s; keep it well under the scheduler's lease.
	RPCInterval time.Duration
	// AllowAccountCreation lets create_account.php make users.
	AllowAccountCreation bool
	// RequestTimeout bounds each request to the gateway (default 10 s).
	RequestTimeout time.Duration
	Logger         *slog.Logger
}

// MinSecretBytes is the least Secret holds.
const MinSecretBytes = 32

// Server serves BOINC clients.
type Server struct {
	cfg     Config
	mux     *http.ServeMux
	signed  sync.Map // md5 → verified code signature
	modules sync.Map // wu.Hash → fileMeta of an app's module
	missing sync.Map // md5 → struct{}: files logged as unsigned once
	hostMu  [64]sync.Mutex
	statusC statusCache
	uploads sync.Mutex // staging files
}

// Paths of the BOINC side under the project's URL.
const (
	pathScheduler = "cgi"
	pathDownload  = "download/"
	pathUpload    = "file_upload_handler"
)

// New returns a BOINC side for cfg.
func New(cfg Config) (*Server, error) {
	if !strings.HasSuffix(cfg.URL, "/") {
		cfg.URL += "/"
	}
	if !strings.HasPrefix(cfg.URL, "http://") && !strings.HasPrefix(cfg.URL, "https://") {
		return nil, fmt.Errorf("boinc: the project URL %q is not an http:// or https:// URL", cfg.URL)
	}
	if cfg.Gateway == nil || cfg.Directory == nil || cfg.Blobs == nil || cfg.Uploads == nil {
		return nil, errors.New("boinc: the gateway, directory, blob store and uploads must be given")
	}
	if cfg.CodeSignKey == nil {
		return nil, errors.New("boinc: no code-signing public key: make the key pair with `momonga-project init`")
	}
	if len(cfg.Secret) < MinSecretBytes {
		return nil, fmt.Errorf("boinc: the secret must have at least %d bytes", MinSecretBytes)
	}
	if cfg.UploadDir == "" {
		return nil, errors.New("boinc: no directory to stage uploads in")
	}
	if err := os.MkdirAll(cfg.UploadDir, 0o700); err != nil {
		return nil, fmt.Errorf("boinc: %w", err)
	}
	if cfg.ProjectName == "" {
		cfg.ProjectName = "momonga"
	}
	if cfg.RPCInterval <= 0 {
		cfg.RPCInterval = 10 * time.Second
	}
	if cfg.RequestTimeout <= 0 {
		cfg.RequestTimeout = 10 * time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	s := &Server{cfg: cfg, mux: http.NewServeMux()}
	s.mux.HandleFunc("GET /{$}", s.master)
	s.mux.HandleFunc("POST /"+pathScheduler, s.scheduler)
	s.mux.HandleFunc("GET /"+pathDownload+"{name}", s.download)
	s.mux.HandleFunc("POST /"+pathUpload, s.upload)
	s.mux.HandleFunc("GET /lookup_account.php", s.lookupAccount)
	s.mux.HandleFunc("GET /create_account.php", s.createAccount)
	s.mux.HandleFunc("GET /get_project_config.php", s.projectConfig)
	return s, nil
}

// ServeHTTP serves the BOINC side.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.mux.ServeHTTP(w, r) }

// mac is the secret's HMAC of the parts, for one purpose.
func (s *Server) mac(purpose string, parts ...string) []byte {
	m := hmac.New(sha256.New, s.cfg.Secret)
	m.Write([]byte(purpose))
	for _, p := range parts {
		m.Write([]byte{0})
		m.Write([]byte(p))
	}
	return m.Sum(nil)
}

// hostLock serialises the requests of one host.
func (s *Server) hostLock(id string) *sync.Mutex {
	h := fnv.New32a()
	h.Write([]byte(id))
	return &s.hostMu[h.Sum32()%uint32(len(s.hostMu))]
}

// request sends a request through the gateway and decodes its reply; an
// error the reply carries is returned as a *wu.Error.
func request[Rep any](ctx context.Context, s *Server, subject string, body any) (Rep, error) {
	var rep Rep
	ctx, cancel := context.WithTimeout(ctx, s.cfg.RequestTimeout)
	defer cancel()
	b, err := s.cfg.Gateway.Request(ctx, subject, wu.Encode(body))
	if err != nil {
		return rep, fmt.Errorf("%s: %w", subject, err)
	}
	var ack struct {
		Error *wu.Error `json:"error"`
	}
	if err := jsonUnmarshal(b, &ack); err != nil {
		return rep, fmt.Errorf("%s: reply %q: %w", subject, b, err)
	}
	if ack.Error != nil {
		return rep, ack.Error
	}
	if err := jsonUnmarshal(b, &rep); err != nil {
		return rep, fmt.Errorf("%s: reply %q: %w", subject, b, err)
	}
	return rep, nil
}

// statusCache keeps the project's status for a second: every scheduler
// RPC reads credit and hosts from it.
type statusCache struct {
	mu   sync.Mutex
	at   time.Time
	last wu.StatusReply
}

func (s *Server) status() wu.StatusReply {
	c := &s.statusC
	c.mu.Lock()
	defer c.mu.Unlock()
	if time.Since(c.at) < time.Second && c.last.Error == nil {
		return c.last
	}
	c.last, c.at = s.cfg.Directory.Status(), time.Now()
	return c.last
}

// forgetStatus makes the next status read fresh, after a change this
// server made.
func (s *Server) forgetStatus() {
	s.statusC.mu.Lock()
	s.statusC.at = time.Time{}
	s.statusC.mu.Unlock()
}

// Runner is the app's executable for one BOINC platform.
type Runner struct {
	Path string
	Size int64
	MD5  string
}

// RunnerFile is the name of the runner for a platform in a LoadRunners
// directory: momonga-boinc-app_PLATFORM, with ".exe" for Windows.
func RunnerFile(platform string) string {
	name := runnerPrefix + platform
	if strings.Contains(platform, "windows") {
		name += ".exe"
	}
	return name
}

const runnerPrefix = "momonga-boinc-app_"

// Platforms are the BOINC platforms the runner is built for.
var Platforms = []string{"x86_64-pc-linux-gnu", "aarch64-unknown-linux-gnu", "windows_x86_64", "x86_64-apple-darwin", "arm64-apple-darwin"}

// ErrNoRunners is LoadRunners' error for a directory without a runner.
var ErrNoRunners = errors.New("no BOINC app")

// LoadRunners finds the runners built for the platforms in dir
// (RunnerFile); a platform without one gets no work.
func LoadRunners(dir string) (map[string]Runner, error) {
	runners := map[string]Runner{}
	for _, p := range Platforms {
		path := filepath.Join(dir, RunnerFile(p))
		b, err := os.ReadFile(path)
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, err
		}
		runners[p] = Runner{Path: path, Size: int64(len(b)), MD5: md5Hex(b)}
	}
	if len(runners) == 0 {
		return nil, fmt.Errorf("%w in %s: build one with `GOOS=linux GOARCH=amd64 go build -o %s ./cmd/momonga-boinc-app` (and likewise for the other platforms)",
			ErrNoRunners, dir, filepath.Join(dir, RunnerFile(Platforms[0])))
	}
	return runners, nil
}
