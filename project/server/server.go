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

	HTTPListen string // host:port of the stats site; "" for none
	// StatsDir is where the statistics exports are written (BOINC's
	// user.gz, team.gz, host.gz, tables.xml) and served from under
	// /stats/; "" for none. ExportEvery is how often (0: only on demand).
	StatsDir    string
	ExportEvery time.Duration
	// LeafListen is the host:port this server takes leaf-node servers'
	// connections on (Leaf, `serve --leaf-listen`); "" for none.
	LeafListen string
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
	// NoPush tells no idle host that work waits for it: hosts find new
	// work only when they next poll, as before pushes (a test of the
	// clients' fallback, or a project that wants no push traffic).
	NoPush bool
	// Heartbeat and Lapse time the virtual peers' membership (defaults one
	// and three seconds): a member or lease holder silent for Lapse is
	// replaced.
	Heartbeat, Lapse time.Duration
	// SnapshotEvery is how many log records apart snapshots are taken
	// (default 10,000).
	SnapshotEvery uint64
	// SnapshotSpacing spaces them further as the state grows: one record
	// more for each so many bytes of it (default 256; negative: none). A
	// scheduler of 200,000 tasks snapshots every 80,000 records or so,
	// since encoding its state holds up applying (vpeer.MemberConfig).
	SnapshotSpacing int
	// Batch is how the gateway groups the requests arriving together into
	// records of the scheduler's log (gateway.Batching; its defaults when
	// zero).
	Batch  gateway.Batching
	Logger *slog.Logger
	// ProfilePort, when not 0, serves Go's profiles of this process
	// (/debug/pprof/) on this port of the NATS listener's host, through the
	// embedded NATS server's profiler. For measurements only: anyone who reaches the port may read them.
	ProfilePort int
	// BOINC serves stock BOINC clients (boinc.go); off unless Listen is set.
	BOINC BOINC

	Trust // who may connect and publish; auth.go
}

// Server is a running project server.
type Server struct {
	cfg Config
	ns  *natsserver.Server // the embedded NATS server, if any
	nc  *nats.Conn
	// listenLater: the embedded server opens its client port only once
	// the project can answer volunteers (listen).
	listenLater bool

	log, acctLog *jetlog.Log
	group, acct  *vpeer.Group
	store        *blobs.Store
	duties       atomic.Pointer[duties.Duties]
	gw           *gateway.Gateway
	stats        *stats.Server
	auth         authParts
	boincHTTP    *http.Server
	boincURL     string

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
	if cfg.mode.edge() {
		if err := s.startEdge(); err != nil {
			return nil, err
		}
		if err := s.listen(); err != nil {
			return nil, err
		}
		ok = true
		return s, nil
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
	if err := s.listen(); err != nil {
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
	switch {
	case cfg.SnapshotSpacing == 0:
		cfg.SnapshotSpacing = 256
	case cfg.SnapshotSpacing < 0:
		cfg.SnapshotSpacing = 0
	}
	cfg.Trust = cfg.Trust.withDefaults()
	if cfg.SigningKey != nil {
		cfg.Sched.SigningKey = wu.FormatPublicKey(cfg.SigningKey)
	}
	return cfg, nil
}

// openPeers opens (joining, finds) both virtual peers.
func (s *Server) openPeers(ctx context.Context, js jetstream.JetStream) error {
	params, _ := json.Marshal(s.cfg.Sched)
	sp := jetlog.Peer{Stream: LogStream, Subject: LogSubject, Snapshots: SnapshotsBucket, Registry: MembersBucket}
	spec, err := s.openPeer(ctx, js, Group, sp, params, &s.log, &s.group, vpeer.GroupConfig{
		NewMachine:   func() vpeer.StateMachine { return sched.New(s.cfg.Sched) },
		Outputs:      s.outputs,
		TickInterval: s.cfg.TickInterval,
	})
	if err != nil {
		return err
	}
	// Joining, or on a shared NATS, the policy is the one recorded.
	if err := json.Unmarshal(spec.Params, &s.cfg.Sched); err != nil {
		return fmt.Errorf("the scheduler's policy: %w", err)
	}
	ap := jetlog.Peer{Stream: AcctStream, Subject: AcctSubject, Snapshots: AcctSnapshotsBucket, Registry: MembersBucket}
	if _, err := s.openPeer(ctx, js, AcctGroup, ap, nil, &s.acctLog, &s.acct, vpeer.GroupConfig{
		NewMachine: func() vpeer.StateMachine { return accounting.New() },
	}); err != nil {
		return fmt.Errorf("accounting: %w", err)
	}
	return nil
}

// openPeer opens (joining, finds) the assets of virtual peer name and its
// spec, and makes this process's part of it from gc: its machine, and what
// it does besides applying.
func (s *Server) openPeer(ctx context.Context, js jetstream.JetStream, name string, p jetlog.Peer, params []byte, log **jetlog.Log, group **vpeer.Group, gc vpeer.GroupConfig) (vpeer.GroupSpec, error) {
	var a jetlog.Assets
	spec := vpeer.GroupSpec{Size: s.cfg.GroupSize, Params: params}
	join := s.cfg.mode.joins()
	err := s.untilClusterReady(ctx, func(ctx context.Context) (err error) {
		if join {
			if a, err = p.Bind(ctx, js); err == nil {
				spec, err = vpeer.ReadSpec(ctx, a.Registry, name)
			}
			return err
		}
		a, err = p.Open(ctx, js, s.cfg.Replicas)
		return err
	})
	switch {
	case err != nil && join:
		return spec, fmt.Errorf("join: %w", err)
	case err != nil || join:
	case !s.cfg.mode.shared():
		err = vpeer.WriteSpec(ctx, a.Registry, name, spec)
	default:
		// Members must all run the same policy: the first server to start
		// recorded it.
		if spec, err = vpeer.EnsureSpec(ctx, a.Registry, name, spec); err == nil && !bytes.Equal(spec.Params, params) {
			s.cfg.Logger.Warn("the policy recorded by the first server differs from this server's flags; using the recorded one",
				"group", name, "recorded", string(spec.Params))
		}
	}
	if err != nil {
		return spec, err
	}
	gc.Process = vpeer.ProcessName()
	*log = a.Log.Logged(s.cfg.Logger.With("part", "vpeer", "group", name), 0).Origin(gc.Process)
	gc.Name, gc.Size, gc.Capacity = name, spec.Size, s.cfg.Members
	gc.Registry, gc.Log, gc.Snapshots, gc.Reply = a.Registry, *log, a.Snapshots, s.nc.Publish
	gc.SnapshotEvery, gc.SnapshotSpacing, gc.Heartbeat, gc.Lapse = s.cfg.SnapshotEvery, uint64(s.cfg.SnapshotSpacing), s.cfg.Heartbeat, s.cfg.Lapse
	gc.Logger = s.cfg.Logger.With("part", "vpeer")
	*group, err = vpeer.NewGroup(gc)
	return spec, err
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
		// The duties' records carry the lease's term, and none is appended
		// once this process may no longer act on the lease.
		Sched:            schedPeer{s.group, jetlog.Requests{Log: s.group.OnLease(s.log), NC: s.nc}},
		Acct:             jetlog.Requests{Log: s.acctLog, NC: s.nc},
		Blobs:            s.store,
		ValidateInterval: s.cfg.ValidateInterval,
		Notifier:         s.notifier(),
		Now:              s.cfg.Now,
		Logger:           s.cfg.Logger.With("part", "duties"),
	}
	if s.auth.callout != nil {
		dc.Revoker = cutoffs{s.nc, s.cfg.Logger.With("part", "auth")}
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
// its log, and the scheduler has applied a tick: before one, it would hand
// out tasks with leases counted from the zero time, all lost at the first
// tick.
func (s *Server) waitReady(ctx context.Context) error {
	for _, g := range []*vpeer.Group{s.acct, s.group} {
		select {
		case <-g.Ready():
		case <-s.done:
			return fmt.Errorf("virtual peer %s failed to start: %w", g.Name(), s.runErr)
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return s.group.WaitTime(ctx)
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
		Batch:      s.cfg.Batch,
		Logger:     s.cfg.Logger.With("part", "gateway"),
	})
	if err := s.gw.Subscribe(runCtx, s.nc); err != nil {
		return fmt.Errorf("gateway: %w", err)
	}
	if err := s.serveExports(runCtx); err != nil {
		return fmt.Errorf("exports: %w", err)
	}
	if s.cfg.StatsDir != "" && s.cfg.ExportEvery > 0 {
		s.wg.Go(func() { s.exportLoop(runCtx) })
	}
	if err := s.serveDirectory(); err != nil {
		return err
	}
	if err := s.serveBOINC(uploads); err != nil {
		return fmt.Errorf("BOINC side: %w", err)
	}
	if s.cfg.HTTPListen != "" {
		s.stats, err = stats.Listen(s.cfg.HTTPListen, stats.Handler(s.statsConfig()), s.cfg.Logger.With("part", "stats"))
	}
	return err
}

// listen opens the embedded server's client port, if it has not been
// opened from the start: the auth callout is subscribed and the members
// have replayed their logs, so a volunteer's connection is answered at
// once rather than timed out.
func (s *Server) listen() error {
	if !s.listenLater {
		return nil
	}
	opened := make(chan struct{})
	go s.ns.AcceptLoop(opened)
	<-opened
	if s.ns.Addr() == nil {
		return fmt.Errorf("nats server could not listen on %s (is another server using the port?)", s.ns.ClientURL())
	}
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
func (s *Server) StatsURL() string { return s.stats.URL() }

// reads reads the state from this process's members.
func (s *Server) reads() reads.Reads { return reads.Reads{Sched: s.group, Acct: s.acct} }

// Status is the scheduler's state in brief, with credit (project/reads).
func (s *Server) Status() wu.StatusReply { return s.reads().Status() }

// Results lists a page of one batch's results (project/reads).
func (s *Server) Results(q wu.ResultsQuery) (wu.ResultsReply, error) { return s.reads().Results(q) }

// Accounts lists users and teams, e-mail addresses included.
func (s *Server) Accounts() wu.AccountsReply { return s.reads().Accounts() }

// Credit is one host's credit and its owner's (project/reads).
func (s *Server) Credit(host string) wu.CreditReply { return s.reads().Credit(host) }

// WaitForMembers waits until a member of the scheduler's virtual peer, in
// any process, serves: how a server with no members of its own knows its
// members have come.
func (s *Server) WaitForMembers(ctx context.Context) error {
	return jetlog.WaitServing(ctx, s.nc, Group)
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
	s.stats.Close()
	s.closeBOINC()
	if s.cfg.mode.edge() && s.done != nil {
		close(s.done)
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
	if s.auth.callout != nil {
		s.auth.callout.Close()
	}
	if s.ns != nil {
		// Lame duck first: it closes the client port, then the clients,
		// and only then shuts down. A plain Shutdown tears down the
		// server's system account while it still accepts connections, and
		// a volunteer's CONNECT arriving then makes nats-server (2.15) ask
		// the auth callout with no system account: a nil-pointer panic.
		// A server that never opened its port has no such clients.
		s.ns.LameDuckShutdown()
		s.ns.Shutdown()
		s.ns.WaitForShutdown()
	}
}

// notifier is how the duties tell idle hosts of work: none with NoPush.
func (s *Server) notifier() duties.Notifier {
	if s.cfg.NoPush {
		return nil
	}
	return pusher{s.nc}
}

// pusher tells idle hosts that work waits for them.
type pusher struct{ nc *nats.Conn }

func (p pusher) WorkWaiting(hosts []string) {
	for _, h := range hosts {
		// Best effort: a host that does not hear polls.
		_ = p.nc.Publish(wu.PushSubject(h), nil)
	}
}
