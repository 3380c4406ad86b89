// Package server is the process of `momonga-project serve` (DESIGN §1): it
// reaches the project's NATS (embedding a server, alone or in a cluster, or
// connecting to one run elsewhere), opens the scheduler's and the
// accounting's virtual peers over their JetStream logs, runs this process's
// members of them, and wires the parts around them: the gateway
// (project/gateway), the lease holder's duties (project/duties), the
// reads of the state (project/reads), the stats page (project/stats) and
// the auth callout (project/auth). A Config comes from one constructor per
// way of running: Embedded, Clustered, External, Joining.
package server

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	natsserver "github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/momonga-project/momonga/project/accounting"
	"github.com/momonga-project/momonga/project/blobs"
	"github.com/momonga-project/momonga/project/duties"
	"github.com/momonga-project/momonga/project/gateway"
	"github.com/momonga-project/momonga/project/reads"
	"github.com/momonga-project/momonga/project/sched"
	"github.com/momonga-project/momonga/project/stats"
	"github.com/momonga-project/momonga/vpeer"
	"github.com/momonga-project/momonga/vpeer/jetlog"
	wu "github.com/momonga-project/momonga/workunits"
)

// Names of the project's JetStream assets and of its virtual peers: the
// scheduler's, and the accounting peer that counts credit from the
// scheduler's outputs (DESIGN §5, §9).
const (
	LogStream           = "SCHED"
	LogSubject          = "sched.log"
	SnapshotsBucket     = "SCHED_SNAPSHOTS"
	MembersBucket       = "MEMBERS"
	Group               = "sched"
	AcctStream          = "ACCT"
	AcctSubject         = "acct.log"
	AcctSnapshotsBucket = "ACCT_SNAPSHOTS"
	AcctGroup           = "acct"
)

// Config is how a project server runs. Make one with Embedded, Clustered,
// External or Joining, then set what differs from their defaults.
type Config struct {
	mode mode

	HTTPListen string       // host:port of the stats page; "" for none
	Sched      sched.Config // the scheduler's policy; joining, the recorded one
	// Members is how many members of each virtual peer this process runs:
	// default 1. Serving, 0 runs none here: the members run in processes
	// that join, Start returns once the gateway serves (WaitForMembers
	// waits for them), and what needs a member's state here (Status,
	// Results, the duties) is not available: a harness for members that
	// come and go, as `vpeer chaos`. Joining, it is how many this process
	// may run: it takes slots that are free or lapse.
	Members int
	// GroupSize is how many members each virtual peer keeps, all processes
	// together; default Members, or in a cluster Members on each server. A
	// group already recorded keeps its size.
	GroupSize int
	// Replicas is the replication of the logs, the snapshot stores, the
	// membership bucket, the blob store and the uploads in progress:
	// default 1, or in a cluster min(3, servers).
	Replicas int
	// TickInterval is how often time enters the log (default one second).
	TickInterval time.Duration
	// Heartbeat and Lapse time the virtual peers' membership (defaults one
	// and three seconds): a member or lease holder silent for Lapse is
	// replaced.
	Heartbeat, Lapse time.Duration
	// SnapshotEvery is how many log records apart snapshots are taken
	// (default 10,000).
	SnapshotEvery uint64
	Logger        *slog.Logger

	Trust // who may connect and publish; auth.go
}

// Server is a running project server.
type Server struct {
	cfg Config
	ns  *natsserver.Server // the embedded NATS server, if any
	nc  *nats.Conn

	log, acctLog *jetlog.Log
	group, acct  *vpeer.Group
	store        *blobs.Store
	duties       atomic.Pointer[duties.Duties]
	gw           *gateway.Gateway
	http         *http.Server
	httpLn       net.Listener
	auth         authParts

	cancel context.CancelFunc
	wg     sync.WaitGroup // the members, the duties
	done   chan struct{}
	runErr error
}

// Start starts every part of the server and returns once this process's
// members have replayed their logs and, serving, the gateway serves.
func Start(ctx context.Context, cfg Config) (*Server, error) {
	if cfg.mode == nil {
		return nil, errors.New("server: make the Config with Embedded, Clustered, External or Joining")
	}
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	s := &Server{cfg: cfg, done: make(chan struct{})}
	ok := false
	defer func() {
		if !ok {
			s.shutdown()
		}
	}()
	if err := cfg.mode.connect(s); err != nil {
		return nil, err
	}
	js, err := jetstream.New(s.nc)
	if err != nil {
		return nil, fmt.Errorf("jetstream: %w", err)
	}
	if err := s.openPeers(ctx, js); err != nil {
		return nil, err
	}
	if err := s.openStore(ctx, js); err != nil {
		return nil, err
	}
	runCtx, cancel := context.WithCancel(context.Background())
	s.cancel = cancel
	if !cfg.mode.joins() {
		if err := s.startCallout(); err != nil {
			return nil, err
		}
	}
	s.runPeers(runCtx)
	if cfg.mode.joins() {
		ok = true
		return s, nil
	}
	if cfg.Members > 0 {
		if err := s.waitReady(ctx); err != nil {
			return nil, err
		}
	}
	if err := s.serve(ctx, runCtx, js); err != nil {
		return nil, err
	}
	ok = true
	return s, nil
}

func (cfg Config) withDefaults() (Config, error) {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.TickInterval <= 0 {
		cfg.TickInterval = time.Second
	}
	if cfg.Members < 0 || cfg.Members == 0 && cfg.mode.joins() {
		return cfg, fmt.Errorf("%d members: a process joining a project runs at least one", cfg.Members)
	}
	if cfg.Replicas <= 0 {
		cfg.Replicas = cfg.mode.replicas()
	}
	if cfg.Replicas > 5 {
		return cfg, fmt.Errorf("%d replicas: JetStream keeps at most 5", cfg.Replicas)
	}
	if cfg.GroupSize <= 0 {
		cfg.GroupSize = max(cfg.Members, 1) * cfg.mode.servers()
	}
	if cfg.SnapshotEvery == 0 {
		cfg.SnapshotEvery = 10_000
	}
	cfg.Trust = cfg.Trust.withDefaults()
	if cfg.SigningKey != nil {
		cfg.Sched.SigningKey = wu.FormatPublicKey(cfg.SigningKey)
	}
	return cfg, nil
}

// peerAssets names the JetStream assets of one virtual peer.
type peerAssets struct {
	group, stream, subject, snapshots string
	tick                              time.Duration // how often its lease holder appends a tick; 0: never
}

// openPeers opens (joining, finds) both virtual peers.
func (s *Server) openPeers(ctx context.Context, js jetstream.JetStream) error {
	params, _ := json.Marshal(s.cfg.Sched)
	sa := peerAssets{group: Group, stream: LogStream, subject: LogSubject, snapshots: SnapshotsBucket, tick: s.cfg.TickInterval}
	log, group, spec, err := s.openPeer(ctx, js, sa, params, func() vpeer.StateMachine { return sched.New(s.cfg.Sched) }, s.outputs)
	if err != nil {
		return err
	}
	// Joining, or on a shared NATS, the policy is the one recorded.
	if err := json.Unmarshal(spec.Params, &s.cfg.Sched); err != nil {
		return fmt.Errorf("the scheduler's policy: %w", err)
	}
	s.log, s.group = log, group
	aa := peerAssets{group: AcctGroup, stream: AcctStream, subject: AcctSubject, snapshots: AcctSnapshotsBucket}
	if s.acctLog, s.acct, _, err = s.openPeer(ctx, js, aa, nil, func() vpeer.StateMachine { return accounting.New() }, nil); err != nil {
		return fmt.Errorf("accounting: %w", err)
	}
	return nil
}

// openPeer opens (or, joining, finds) the log, snapshot store and spec of
// the virtual peer a names, and makes this process's part of it. The group's
// machines are made with newMachine once the group runs.
func (s *Server) openPeer(ctx context.Context, js jetstream.JetStream, a peerAssets, params []byte, newMachine func() vpeer.StateMachine, outputs func(uint64, []any)) (*jetlog.Log, *vpeer.Group, vpeer.GroupSpec, error) {
	var (
		log   *jetlog.Log
		snaps *jetlog.Snapshots
		reg   *jetlog.Registry
		spec  = vpeer.GroupSpec{Size: s.cfg.GroupSize, Params: params}
		err   error
	)
	if s.cfg.mode.joins() {
		err = s.untilClusterReady(ctx, func(ctx context.Context) (err error) {
			if log, err = jetlog.Bind(ctx, js, a.stream); err != nil {
				return err
			}
			if snaps, err = jetlog.BindSnapshots(ctx, js, a.snapshots); err != nil {
				return err
			}
			if reg, err = jetlog.BindRegistry(ctx, js, MembersBucket); err != nil {
				return err
			}
			spec, err = vpeer.ReadSpec(ctx, reg, a.group)
			return err
		})
		if err != nil {
			return nil, nil, spec, fmt.Errorf("join: %w", err)
		}
	} else {
		r := s.cfg.Replicas
		err = s.untilClusterReady(ctx, func(ctx context.Context) (err error) {
			if log, err = jetlog.Open(ctx, js, jetlog.Config{Stream: a.stream, Subject: a.subject, Replicas: r, Storage: jetstream.FileStorage}); err != nil {
				return err
			}
			if snaps, err = jetlog.OpenSnapshots(ctx, js, a.snapshots, r); err != nil {
				return err
			}
			reg, err = jetlog.OpenRegistry(ctx, js, MembersBucket, r)
			return err
		})
		if err != nil {
			return nil, nil, spec, err
		}
		if !s.cfg.mode.shared() {
			err = vpeer.WriteSpec(ctx, reg, a.group, spec)
		} else if spec, err = vpeer.EnsureSpec(ctx, reg, a.group, spec); err == nil && !bytes.Equal(spec.Params, params) {
			// Members must all run the same policy: the first server
			// to start recorded it.
			s.cfg.Logger.Warn("the policy recorded by the first server differs from this server's flags; using the recorded one",
				"group", a.group, "recorded", string(spec.Params))
		}
		if err != nil {
			return nil, nil, spec, err
		}
	}
	log = log.Logged(s.cfg.Logger.With("part", "vpeer", "group", a.group), 0)
	group, err := vpeer.NewGroup(vpeer.GroupConfig{
		Name:          a.group,
		Size:          spec.Size,
		Capacity:      s.cfg.Members,
		Registry:      reg,
		Log:           log,
		Snapshots:     snaps,
		NewMachine:    newMachine,
		Reply:         s.nc.Publish,
		Outputs:       outputs,
		TickInterval:  a.tick,
		SnapshotEvery: s.cfg.SnapshotEvery,
		Heartbeat:     s.cfg.Heartbeat,
		Lapse:         s.cfg.Lapse,
		Logger:        s.cfg.Logger.With("part", "vpeer"),
	})
	return log, group, spec, err
}

// openStore opens the blob store, or joining finds it.
func (s *Server) openStore(ctx context.Context, js jetstream.JetStream) error {
	return s.untilClusterReady(ctx, func(ctx context.Context) (err error) {
		if s.cfg.mode.joins() {
			s.store, err = blobs.Bind(ctx, js, blobs.Bucket)
		} else {
			s.store, err = blobs.Open(ctx, js, blobs.Bucket, s.cfg.Replicas)
		}
		return err
	})
}

// outputs hands the scheduler's outputs to the duties, once they run.
func (s *Server) outputs(seq uint64, outs []any) {
	if d := s.duties.Load(); d != nil {
		d.Outputs(seq, outs)
	}
}

// runPeers runs this process's members of both virtual peers and the
// duties until ctx is done; with no members here, nothing but a wait for
// ctx.
func (s *Server) runPeers(ctx context.Context) {
	defer func() {
		go func() {
			s.wg.Wait()
			close(s.done)
		}()
	}()
	if s.cfg.Members == 0 {
		s.wg.Go(func() { <-ctx.Done() })
		return
	}
	dc := duties.Config{
		Sched:            schedPeer{s.group, jetlog.Requests{Log: s.log, NC: s.nc}},
		Acct:             jetlog.Requests{Log: s.acctLog, NC: s.nc},
		Blobs:            s.store,
		ValidateInterval: s.cfg.ValidateInterval,
		Now:              s.cfg.Now,
		Logger:           s.cfg.Logger.With("part", "duties"),
	}
	if s.auth.callout != nil {
		dc.Revoker = s.auth.callout
	}
	d := duties.New(dc)
	s.duties.Store(d)
	s.wg.Go(func() { d.Run(ctx) })
	var errOnce sync.Once
	for _, p := range []struct {
		group *vpeer.Group
		log   *jetlog.Log
	}{{s.group, s.log}, {s.acct, s.acctLog}} {
		s.wg.Go(func() {
			// Run returns only when ctx ends.
			_ = p.group.Run(ctx)
		})
		s.wg.Go(func() {
			if err := jetlog.ServeGroup(ctx, s.nc, p.group, p.log); err != nil {
				errOnce.Do(func() { s.runErr = err })
				s.cfg.Logger.Error("virtual peer status", "group", p.group.Name(), "err", err)
				s.cancel()
			}
		})
	}
}

// schedPeer is the scheduler's virtual peer as the duties see it.
type schedPeer struct {
	*vpeer.Group
	jetlog.Requests
}

func (p schedPeer) Query(ctx context.Context, fn func(*sched.Machine)) error {
	return p.Group.Query(ctx, func(m *vpeer.Member) { fn(m.Machine().(*sched.Machine)) })
}

// waitReady waits until a member of each virtual peer here has replayed
// its log and the scheduler has applied a tick: before one, it would hand
// out tasks with leases counted from the zero time, all lost at the first
// tick.
func (s *Server) waitReady(ctx context.Context) error {
	for _, g := range []*vpeer.Group{s.group, s.acct} {
		select {
		case <-g.Ready():
		case <-s.done:
			return fmt.Errorf("virtual peer %s failed to start: %w", g.Name(), s.runErr)
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	t := time.NewTicker(10 * time.Millisecond)
	defer t.Stop()
	for {
		var now time.Time
		if err := s.group.Query(ctx, func(m *vpeer.Member) { now = m.Status().Time }); err != nil {
			return err
		}
		if !now.IsZero() {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("the scheduler has no time yet: %w", ctx.Err())
		case <-t.C:
		}
	}
}

// serve starts what volunteers and tools talk to: the auth callout, the
// gateway and the stats page.
func (s *Server) serve(ctx, runCtx context.Context, js jetstream.JetStream) error {
	var uploads *blobs.Uploads
	err := s.untilClusterReady(ctx, func(ctx context.Context) (err error) {
		uploads, err = blobs.OpenUploads(ctx, js, s.store, s.cfg.Replicas, wu.MaxOutputBytes)
		return err
	})
	if err != nil {
		return err
	}
	s.gw = gateway.New(gateway.Config{
		Log:        s.log,
		Blobs:      s.store,
		Uploads:    uploads,
		Reads:      s,
		Publish:    s.nc,
		SigningKey: s.cfg.SigningKey,
		Limiter:    gateway.NewRateLimiter(s.cfg.HostRate, s.cfg.HostBurst, s.cfg.FloodAfter, s.cfg.Now),
		OnFlood:    s.throttle,
		Logger:     s.cfg.Logger.With("part", "gateway"),
	})
	if err := s.gw.Subscribe(runCtx, s.nc); err != nil {
		return fmt.Errorf("gateway: %w", err)
	}
	if s.cfg.HTTPListen == "" {
		return nil
	}
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
func (s *Server) ClientURL() string {
	if s.ns == nil {
		return s.nc.ConnectedUrlRedacted()
	}
	return s.ns.ClientURL()
}

// Group is this process's part of the scheduler's virtual peer.
func (s *Server) Group() *vpeer.Group { return s.group }

// Acct is this process's part of the accounting virtual peer.
func (s *Server) Acct() *vpeer.Group { return s.acct }

// StatsURL is the stats page's address, or "" when it is off.
func (s *Server) StatsURL() string {
	if s.httpLn == nil {
		return ""
	}
	return "http://" + s.httpLn.Addr().String() + "/"
}

// reads reads the state from this process's members.
func (s *Server) reads() reads.Reads { return reads.Reads{Sched: s.group, Acct: s.acct} }

// Status is the scheduler's state in brief, with credit (project/reads).
func (s *Server) Status() wu.StatusReply { return s.reads().Status() }

// Results lists a page of one batch's results (project/reads).
func (s *Server) Results(q wu.ResultsQuery) (wu.ResultsReply, error) { return s.reads().Results(q) }

// Accounts lists users and teams, e-mail addresses included.
func (s *Server) Accounts() wu.AccountsReply { return s.reads().Accounts() }

// WaitForMembers waits until a member of the scheduler's virtual peer, in
// any process, is ready and has applied a tick: from then on requests are
// answered. It is how a server with no members of its own knows its
// members have come; it asks the members' processes for their status.
func (s *Server) WaitForMembers(ctx context.Context) error {
	t := time.NewTicker(50 * time.Millisecond)
	defer t.Stop()
	for {
		reports, err := jetlog.GatherStatus(ctx, s.nc, Group, 50*time.Millisecond)
		if err != nil && ctx.Err() == nil && !errors.Is(err, nats.ErrNoResponders) {
			return fmt.Errorf("wait for the scheduler's members: %w", err)
		}
		for _, g := range vpeer.Summarize(reports) {
			for _, m := range g.Members {
				if m.Ready && !m.Time.IsZero() {
					return nil
				}
			}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("no member of the scheduler's virtual peer ready with a tick: %w", ctx.Err())
		case <-t.C:
		}
	}
}

// InProcessConn opens a connection to the embedded NATS server that does not
// go through a socket. It makes a Server a nats.InProcessConnProvider, so
// tools in the same process connect with nats.InProcessServer(srv).
func (s *Server) InProcessConn() (net.Conn, error) { return s.ns.InProcessConn() }

// Done is closed when the server has stopped.
func (s *Server) Done() <-chan struct{} { return s.done }

// Close stops the server: gateway, members, duties, stats page and NATS.
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
		s.gw.Wait()
	}
	if s.nc != nil {
		s.nc.Close()
	}
	s.stopCallout()
	if s.ns != nil {
		s.ns.Shutdown()
		s.ns.WaitForShutdown()
	}
}
