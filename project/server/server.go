// Package server is `momonga-project serve`: an embedded NATS server with
// JetStream, the scheduler run as a virtual-peer member over a JetStream log,
// the blob store, the volunteer gateway and the stats page (DESIGN §1).
package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	natsserver "github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/momonga-project/momonga/project/blobs"
	"github.com/momonga-project/momonga/project/sched"
	"github.com/momonga-project/momonga/project/stats"
	"github.com/momonga-project/momonga/vpeer"
	"github.com/momonga-project/momonga/vpeer/jetlog"
	wu "github.com/momonga-project/momonga/workunits"
)

// Names of the project's JetStream assets.
const (
	LogStream  = "SCHED"
	LogSubject = "sched.log"
)

// Config is how a project server runs.
type Config struct {
	DataDir      string
	NATSListen   string        // host:port for volunteers and tools; port 0 picks a free one
	HTTPListen   string        // host:port of the stats page; "" for none
	Sched        sched.Config  // the scheduler's policy
	TickInterval time.Duration // how often time enters the log
	Logger       *slog.Logger
}

// Server is a running project server.
type Server struct {
	cfg    Config
	ns     *natsserver.Server
	nc     *nats.Conn
	member *vpeer.Member
	mach   *sched.Machine
	gw     *gateway
	http   *http.Server
	httpLn net.Listener

	cancel context.CancelFunc
	done   chan struct{}
	runErr error
}

// Start starts every part of the server and returns once the scheduler has
// replayed its log and the gateway is serving.
func Start(ctx context.Context, cfg Config) (*Server, error) {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.TickInterval <= 0 {
		cfg.TickInterval = time.Second
	}
	if cfg.NATSListen == "" {
		cfg.NATSListen = "127.0.0.1:4222"
	}
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return nil, fmt.Errorf("data directory: %w", err)
	}
	s := &Server{cfg: cfg, done: make(chan struct{})}
	ok := false
	defer func() {
		if !ok {
			s.shutdown()
		}
	}()
	if err := s.startNATS(); err != nil {
		return nil, err
	}
	js, err := jetstream.New(s.nc)
	if err != nil {
		return nil, fmt.Errorf("jetstream: %w", err)
	}
	log, err := jetlog.Open(ctx, js, jetlog.Config{Stream: LogStream, Subject: LogSubject, Replicas: 1, Storage: jetstream.FileStorage})
	if err != nil {
		return nil, err
	}
	store, err := blobs.Open(ctx, js, blobs.Bucket, 1)
	if err != nil {
		return nil, err
	}
	s.mach = sched.New(cfg.Sched)
	s.member = vpeer.NewMember(vpeer.MemberConfig{
		Log:          log,
		Machine:      s.mach,
		Reply:        s.nc.Publish,
		TickInterval: cfg.TickInterval,
		Logger:       cfg.Logger.With("part", "member"),
	})
	s.gw = &gateway{
		log:     log,
		blobs:   store,
		uploads: &blobs.Uploads{Store: store, Dir: filepath.Join(cfg.DataDir, "uploads"), MaxBytes: wu.MaxOutputBytes},
		status:  s.Status,
		results: s.Results,
		logger:  cfg.Logger.With("part", "gateway"),
		slots:   make(chan struct{}, 256),
	}

	runCtx, cancel := context.WithCancel(context.Background())
	s.cancel = cancel
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		if err := s.member.Run(runCtx); err != nil && !errors.Is(err, context.Canceled) {
			s.runErr = err
			cfg.Logger.Error("scheduler member stopped", "err", err)
		}
	}()
	wg.Add(1)
	go func() {
		defer wg.Done()
		s.collectCheckpoints(runCtx, log, store)
	}()
	go func() {
		wg.Wait()
		close(s.done)
	}()
	select {
	case <-s.member.Ready():
	case <-s.done:
		return nil, fmt.Errorf("scheduler failed to start: %w", s.runErr)
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	if _, err := s.gw.subscribe(runCtx, s.nc); err != nil {
		return nil, fmt.Errorf("gateway: %w", err)
	}
	if err := s.nc.Flush(); err != nil {
		return nil, fmt.Errorf("gateway: %w", err)
	}
	if cfg.HTTPListen != "" {
		if err := s.startHTTP(); err != nil {
			return nil, err
		}
	}
	ok = true
	return s, nil
}

func (s *Server) startNATS() error {
	host, portStr, err := net.SplitHostPort(s.cfg.NATSListen)
	if err != nil {
		return fmt.Errorf("--nats-listen %q: %w", s.cfg.NATSListen, err)
	}
	port, err := strconv.Atoi(portStr)
	if err != nil {
		return fmt.Errorf("--nats-listen %q: bad port", s.cfg.NATSListen)
	}
	if port == 0 {
		port = natsserver.RANDOM_PORT
	}
	opts := &natsserver.Options{
		ServerName: "momonga",
		Host:       host,
		Port:       port,
		JetStream:  true,
		StoreDir:   filepath.Join(s.cfg.DataDir, "jetstream"),
		NoSigs:     true,
		MaxPayload: 1 << 20,
	}
	ns, err := natsserver.NewServer(opts)
	if err != nil {
		return fmt.Errorf("nats server: %w", err)
	}
	s.ns = ns
	go ns.Start()
	if !ns.ReadyForConnections(30 * time.Second) {
		return fmt.Errorf("nats server did not start listening on %s", s.cfg.NATSListen)
	}
	s.nc, err = nats.Connect("", nats.InProcessServer(ns), nats.Name("momonga-project"), nats.MaxReconnects(-1))
	if err != nil {
		return fmt.Errorf("connect to embedded nats: %w", err)
	}
	return nil
}

func (s *Server) startHTTP() error {
	ln, err := net.Listen("tcp", s.cfg.HTTPListen)
	if err != nil {
		return fmt.Errorf("stats page on %s: %w", s.cfg.HTTPListen, err)
	}
	s.httpLn = ln
	s.http = &http.Server{Handler: stats.Handler(s.Status), ReadHeaderTimeout: 10 * time.Second}
	go func() {
		if err := s.http.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			s.cfg.Logger.Error("stats page", "err", err)
		}
	}()
	return nil
}

// ClientURL is the NATS URL volunteers and tools connect to.
func (s *Server) ClientURL() string { return s.ns.ClientURL() }

// StatsURL is the stats page's address, or "" when it is off.
func (s *Server) StatsURL() string {
	if s.httpLn == nil {
		return ""
	}
	return "http://" + s.httpLn.Addr().String() + "/"
}

// Status is the scheduler's state in brief, as this member has applied it.
func (s *Server) Status() wu.StatusReply {
	var rep wu.StatusReply
	s.member.Query(func() {
		rep = s.mach.Status()
		rep.Applied = s.member.Applied()
	})
	return rep
}

// Results lists a page of one batch's results.
func (s *Server) Results(q wu.ResultsQuery) (rep wu.ResultsReply, err error) {
	s.member.Query(func() { rep, err = s.mach.Results(q) })
	return rep, err
}

// Done is closed when the server has stopped.
func (s *Server) Done() <-chan struct{} { return s.done }

// Close stops the server: gateway, scheduler, stats page and NATS.
func (s *Server) Close() error {
	s.shutdown()
	return s.runErr
}

func (s *Server) shutdown() {
	if s.http != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		_ = s.http.Shutdown(ctx)
		cancel()
	}
	if s.cancel != nil {
		s.cancel()
		<-s.done
	}
	if s.gw != nil {
		s.gw.wg.Wait()
		s.gw.uploads.Close()
	}
	if s.nc != nil {
		s.nc.Close()
	}
	if s.ns != nil {
		s.ns.Shutdown()
		s.ns.WaitForShutdown()
	}
}
