// Package server is `momonga-project serve`: an embedded NATS server with
// JetStream, the scheduler run as a virtual peer over a JetStream log, the
// blob store, the volunteer gateway and the stats page (DESIGN §1). With
// Config.Join it is `serve --join`: members of an existing project's virtual
// peer, and nothing else.
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
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	natsserver "github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/momonga-project/momonga/project/accounting"
	"github.com/momonga-project/momonga/project/auth"
	"github.com/momonga-project/momonga/project/blobs"
	"github.com/momonga-project/momonga/project/sched"
	"github.com/momonga-project/momonga/project/stats"
	"github.com/momonga-project/momonga/vpeer"
	"github.com/momonga-project/momonga/vpeer/jetlog"
	wu "github.com/momonga-project/momonga/workunits"
)

// Names of the project's JetStream assets and of the scheduler's virtual
// peer.
const (
	LogStream       = "SCHED"
	LogSubject      = "sched.log"
	SnapshotsBucket = "SCHED_SNAPSHOTS"
	MembersBucket   = "MEMBERS"
	Group           = "sched"
)

// Config is how a project server runs.
type Config struct {
	DataDir      string
	NATSListen   string        // host:port for volunteers and tools; port 0 picks a free one
	HTTPListen   string        // host:port of the stats page; "" for none
	Sched        sched.Config  // the scheduler's policy
	TickInterval time.Duration // how often time enters the log
	// Members is how many members the scheduler's virtual peer keeps
	// running; this process runs them all (default 1). With Join, it is how
	// many this process may run: it takes slots that are free or lapse.
	Members int
	// Join, when set, is the NATS URL of a running project: this process
	// then runs no NATS server, gateway or stats page, only members of the
	// project's virtual peer, with the policy the project recorded.
	Join string
	// MembersElsewhere runs no member in this process: the scheduler's
	// Members members run in processes that join (serve --join). Start then
	// returns once the gateway serves, perhaps before any member does
	// (WaitForMembers waits for them), and what needs a member's state here
	// (Status, Results, the validator, checkpoint collection) is not
	// available: a harness for members that come and go, as `vpeer chaos`.
	MembersElsewhere bool
	// JoinOptions connect to Join or NATSURL: on a secured project the
	// project's credentials (nats.UserCredentials with its admin.creds) and
	// the CA of its TLS certificate.
	JoinOptions []nats.Option
	// NATSURL, when set, is an external NATS server or cluster the project
	// is served on instead of an embedded server. Its security is its own:
	// the project's auth callout does not run there.
	NATSURL string
	// Cluster, when its Name is set, makes the embedded server one of a
	// NATS cluster of servers routed to each other (cluster.go).
	Cluster Cluster
	// Replicas is the replication of the log, the snapshot store, the
	// membership bucket, the blob store and the uploads in progress:
	// default 1, or in cluster mode min(3, servers in the cluster).
	Replicas int
	// GroupSize is how many members the virtual peer keeps, all processes
	// together; default Members, or in cluster mode Members on each server.
	// A group already recorded keeps its size.
	GroupSize int
	// Heartbeat and Lapse time the virtual peer's membership (defaults one
	// and three seconds): a member or lease holder silent for Lapse is
	// replaced.
	Heartbeat, Lapse time.Duration
	// SnapshotEvery is how many log records apart snapshots are taken
	// (default 10,000).
	SnapshotEvery uint64
	Logger        *slog.Logger

	Trust // who may connect and publish; trust.go

	// speculate makes the gateway answer volunteers from a copy of a
	// member's state before their request is in the log: a broken variant
	// for the linearizability test to catch.
	speculate bool
}

// Server is a running project server.
type Server struct {
	cfg    Config
	ns     *natsserver.Server
	nc     *nats.Conn
	log    *jetlog.Log
	group  *vpeer.Group
	gw     *gateway
	http   *http.Server
	httpLn net.Listener

	// The accounting virtual peer (accounting.go), and the forwarder's
	// wake-up when the scheduler may have granted credit.
	acctLog *jetlog.Log
	acct    *vpeer.Group
	outputs chan struct{}

	trust trustParts

	cancel context.CancelFunc
	done   chan struct{}
	runErr error
}

// Start starts every part of the server and returns once the scheduler has
// replayed its log and, unless joining, the gateway is serving.
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
	if cfg.Members <= 0 {
		cfg.Members = 1
	}
	if cfg.Cluster.Name != "" {
		if err := cfg.Cluster.check(); err != nil {
			return nil, err
		}
	}
	if cfg.Replicas <= 0 {
		cfg.Replicas = 1
		if cfg.Cluster.Name != "" {
			cfg.Replicas = min(3, cfg.Cluster.Size())
		}
	}
	if cfg.Replicas > 5 {
		return nil, fmt.Errorf("%d replicas: JetStream keeps at most 5", cfg.Replicas)
	}
	if cfg.GroupSize <= 0 {
		cfg.GroupSize = cfg.Members
		if cfg.Cluster.Name != "" {
			cfg.GroupSize = cfg.Members * cfg.Cluster.Size()
		}
	}
	if cfg.SnapshotEvery == 0 {
		cfg.SnapshotEvery = 10_000
	}
	cfg.Trust = cfg.Trust.withDefaults()
	if cfg.SigningKey != nil {
		cfg.Sched.SigningKey = wu.FormatPublicKey(cfg.SigningKey)
	}
	s := &Server{cfg: cfg, done: make(chan struct{}), outputs: make(chan struct{}, 1)}
	s.trust.wake = make(chan struct{}, 1)
	s.trust.revoked = make(chan struct{}, 1)
	ok := false
	defer func() {
		if !ok {
			s.shutdown()
		}
	}()
	if cfg.Join != "" && cfg.NATSURL != "" {
		return nil, errors.New("join a project or serve one on an external NATS, not both")
	}
	if cfg.NATSURL != "" && cfg.Cluster.Name != "" {
		return nil, errors.New("a project on an external NATS runs no NATS server of its own to cluster")
	}
	switch {
	case cfg.Join != "":
		if err := s.connect(cfg.Join, cfg.JoinOptions); err != nil {
			return nil, err
		}
	case cfg.NATSURL != "":
		if err := s.connect(cfg.NATSURL, cfg.JoinOptions); err != nil {
			return nil, err
		}
	default:
		if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
			return nil, fmt.Errorf("data directory: %w", err)
		}
		if err := s.startNATS(); err != nil {
			return nil, err
		}
	}
	js, err := jetstream.New(s.nc)
	if err != nil {
		return nil, fmt.Errorf("jetstream: %w", err)
	}
	group, err := s.openGroup(ctx, js)
	if err != nil {
		return nil, err
	}
	s.group = group
	if err := s.openAcct(ctx, js); err != nil {
		return nil, err
	}
	if cfg.MembersElsewhere {
		if err := s.startElsewhere(ctx, js); err != nil {
			return nil, err
		}
		ok = true
		return s, nil
	}

	runCtx, cancel := context.WithCancel(context.Background())
	s.cancel = cancel
	var wg sync.WaitGroup
	var errOnce sync.Once
	for _, p := range []struct {
		group *vpeer.Group
		log   *jetlog.Log
	}{{group, s.log}, {s.acct, s.acctLog}} {
		wg.Go(func() {
			// Run returns only when runCtx ends.
			_ = p.group.Run(runCtx)
		})
		wg.Go(func() {
			if err := jetlog.ServeGroup(runCtx, s.nc, p.group, p.log); err != nil {
				errOnce.Do(func() { s.runErr = err })
				cfg.Logger.Error("virtual peer status", "group", p.group.Name(), "err", err)
				cancel()
			}
		})
	}
	go func() {
		wg.Wait()
		close(s.done)
	}()
	s.startForwarder(runCtx)
	if cfg.Join != "" {
		// A joining process may be a spare, with no member until one
		// lapses; once one of its members holds the lease, it does the
		// lease holder's duties.
		var store *blobs.Store
		err := s.untilClusterReady(ctx, func(ctx context.Context) (err error) {
			store, err = blobs.Bind(ctx, js, blobs.Bucket)
			return err
		})
		if err != nil {
			return nil, fmt.Errorf("join %s: %w", cfg.Join, err)
		}
		s.startLeaseDuties(runCtx, store)
		ok = true
		return s, nil
	}
	for _, g := range []*vpeer.Group{group, s.acct} {
		select {
		case <-g.Ready():
		case <-s.done:
			return nil, fmt.Errorf("virtual peer %s failed to start: %w", g.Name(), s.runErr)
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	if err := s.waitForTime(ctx); err != nil {
		return nil, err
	}
	if err := s.startGateway(ctx, runCtx, js); err != nil {
		return nil, err
	}
	if cfg.HTTPListen != "" {
		if err := s.startHTTP(); err != nil {
			return nil, err
		}
	}
	ok = true
	return s, nil
}

// peerAssets names the JetStream assets of one virtual peer.
type peerAssets struct {
	group, stream, subject, snapshots string
	tick                              time.Duration // how often its lease holder appends a tick; 0: never
}

// openGroup opens the log, the snapshot store and the registry and makes
// this process's part of the scheduler's virtual peer. The process that
// serves the project creates them and records the policy; a joining one
// finds them and reads it.
func (s *Server) openGroup(ctx context.Context, js jetstream.JetStream) (*vpeer.Group, error) {
	params, _ := json.Marshal(s.cfg.Sched)
	assets := peerAssets{group: Group, stream: LogStream, subject: LogSubject, snapshots: SnapshotsBucket, tick: s.cfg.TickInterval}
	log, group, spec, err := s.openPeer(ctx, js, assets, params, func() vpeer.StateMachine { return s.observe(sched.New(s.cfg.Sched)) })
	if err != nil {
		return nil, err
	}
	// Joining, or on a shared NATS, the policy is the one recorded.
	if err := json.Unmarshal(spec.Params, &s.cfg.Sched); err != nil {
		return nil, fmt.Errorf("the scheduler's policy: %w", err)
	}
	s.log = log
	return group, nil
}

// openPeer opens (or, joining, finds) the log, snapshot store and spec of
// the virtual peer a names, and makes this process's part of it. The group's
// machines are made with newMachine once the group runs, after openPeer has
// returned.
func (s *Server) openPeer(ctx context.Context, js jetstream.JetStream, a peerAssets, params []byte, newMachine func() vpeer.StateMachine) (*jetlog.Log, *vpeer.Group, vpeer.GroupSpec, error) {
	var (
		log   *jetlog.Log
		snaps *jetlog.Snapshots
		reg   *jetlog.Registry
		spec  = vpeer.GroupSpec{Size: s.cfg.GroupSize, Params: params}
		err   error
	)
	cfg := s.cfg
	if cfg.Join == "" {
		r := cfg.Replicas
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
		if !s.shared() {
			err = vpeer.WriteSpec(ctx, reg, a.group, spec)
		} else if spec, err = vpeer.EnsureSpec(ctx, reg, a.group, spec); err == nil && !bytes.Equal(spec.Params, params) {
			// Members must all run the same policy: the first server
			// to start recorded it.
			cfg.Logger.Warn("the policy recorded by the first server differs from this server's flags; using the recorded one",
				"group", a.group, "recorded", string(spec.Params))
		}
		if err != nil {
			return nil, nil, spec, err
		}
	} else {
		if log, err = jetlog.Bind(ctx, js, a.stream); err != nil {
			return nil, nil, spec, fmt.Errorf("join %s: %w", cfg.Join, err)
		}
		if snaps, err = jetlog.BindSnapshots(ctx, js, a.snapshots); err != nil {
			return nil, nil, spec, fmt.Errorf("join %s: %w", cfg.Join, err)
		}
		if reg, err = jetlog.BindRegistry(ctx, js, MembersBucket); err != nil {
			return nil, nil, spec, fmt.Errorf("join %s: %w", cfg.Join, err)
		}
		if spec, err = vpeer.ReadSpec(ctx, reg, a.group); err != nil {
			return nil, nil, spec, fmt.Errorf("join %s: %w", cfg.Join, err)
		}
	}
	log = log.Logged(cfg.Logger.With("part", "vpeer", "group", a.group), 0)
	group, err := vpeer.NewGroup(vpeer.GroupConfig{
		Name:          a.group,
		Size:          spec.Size,
		Capacity:      cfg.Members,
		Registry:      reg,
		Log:           log,
		Snapshots:     snaps,
		NewMachine:    newMachine,
		Reply:         s.nc.Publish,
		TickInterval:  a.tick,
		SnapshotEvery: cfg.SnapshotEvery,
		Heartbeat:     cfg.Heartbeat,
		Lapse:         cfg.Lapse,
		Logger:        cfg.Logger.With("part", "vpeer"),
	})
	return log, group, spec, err
}

func (s *Server) startGateway(ctx, runCtx context.Context, js jetstream.JetStream) error {
	var (
		store   *blobs.Store
		uploads *blobs.Uploads
	)
	err := s.untilClusterReady(ctx, func(ctx context.Context) (err error) {
		if store, err = blobs.Open(ctx, js, blobs.Bucket, s.cfg.Replicas); err != nil {
			return err
		}
		uploads, err = blobs.OpenUploads(ctx, js, store, s.cfg.Replicas, wu.MaxOutputBytes)
		return err
	})
	if err != nil {
		return err
	}
	s.gw = &gateway{
		log:     s.log,
		blobs:   store,
		uploads: uploads,
		status:  s.Status,
		results: s.Results,
		logger:  s.cfg.Logger.With("part", "gateway"),
		slots:   make(chan struct{}, 256),

		accounts:   s.Accounts,
		signingKey: s.cfg.SigningKey,
		limiter:    auth.NewRateLimiter(s.cfg.HostRate, s.cfg.HostBurst, s.cfg.FloodAfter, s.cfg.Now),
		onFlood:    s.throttle,
	}
	if err := s.startCallout(); err != nil {
		return err
	}
	s.startRevokeLoop(runCtx)
	if !s.cfg.MembersElsewhere { // they read a member's state
		s.startLeaseDuties(runCtx, store)
	}
	if s.cfg.speculate {
		s.gw.speculate = s.speculate
	}
	if _, err := s.gw.subscribe(runCtx, s.nc); err != nil {
		return fmt.Errorf("gateway: %w", err)
	}
	if err := s.nc.Flush(); err != nil {
		return fmt.Errorf("gateway: %w", err)
	}
	return nil
}

// waitForTime waits until the scheduler has applied a tick: before it, the
// scheduler would hand out tasks with leases counted from the zero time,
// all lost at the first tick.
func (s *Server) waitForTime(ctx context.Context) error {
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

// connect connects to a running project's NATS.
func (s *Server) connect(url string, opts []nats.Option) error {
	nc, err := nats.Connect(url, append(opts, nats.Name("momonga-project member"), nats.MaxReconnects(-1))...)
	if err != nil {
		return fmt.Errorf("connect to %s: %w (a secured project needs its credentials: --creds DATA/%s)", url, err, AdminCredsFile)
	}
	s.nc = nc
	return nil
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
		// A server name of its own matters only in a cluster
		// (clusterOptions); a single server keeps this one.
		Host:       host,
		Port:       port,
		JetStream:  true,
		StoreDir:   filepath.Join(s.cfg.DataDir, "jetstream"),
		NoSigs:     true,
		MaxPayload: 1 << 20,
	}
	if err := s.secureOptions(opts); err != nil {
		return err
	}
	if err := s.clusterOptions(opts); err != nil {
		return err
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
	if s.trust.authority != nil {
		s.trust.authority.Attach(ns)
	}
	s.nc, err = nats.Connect("", s.ProjectConnectOptions(nats.Name("momonga-project"), nats.MaxReconnects(-1))...)
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
func (s *Server) ClientURL() string {
	if s.ns == nil {
		return s.nc.ConnectedUrlRedacted()
	}
	return s.ns.ClientURL()
}

// Group is this process's part of the scheduler's virtual peer.
func (s *Server) Group() *vpeer.Group { return s.group }

// StatsURL is the stats page's address, or "" when it is off.
func (s *Server) StatsURL() string {
	if s.httpLn == nil {
		return ""
	}
	return "http://" + s.httpLn.Addr().String() + "/"
}

// queryTimeout bounds how long a query waits for a member to be ready,
// as while the only one is being replaced.
const queryTimeout = 10 * time.Second

// Status is the scheduler's state in brief, with the credit the accounting
// peer counts, as of the log's last record when it was asked: it shows
// every request a volunteer or scientist was told is done, even when the
// reply came from a member of another process.
func (s *Server) Status() wu.StatusReply {
	ctx, cancel := context.WithTimeout(context.Background(), queryTimeout)
	defer cancel()
	var (
		rep     wu.StatusReply
		pending []accounting.Grant
		acked   uint64
	)
	err := s.group.QueryLatest(ctx, func(m *vpeer.Member) {
		rep = machineOf(m).Status()
		rep.Applied = m.Applied()
		pending, acked = outbox(machineOf(m), 0)
	})
	if err != nil {
		return wu.StatusReply{V: wu.WireVersion, Error: wu.Errorf(wu.CodeInternal, "the scheduler is not ready; retry in a few seconds")}
	}
	if err := s.fillCredit(ctx, rep.Now, acked, pending, rep.Hosts, rep.Users, rep.Teams); err != nil {
		return wu.StatusReply{V: wu.WireVersion, Error: wu.Errorf(wu.CodeInternal, "the accounting peer is not ready; retry in a few seconds")}
	}
	return rep
}

// Results lists a page of one batch's results, as of the log's last record
// (see Status).
func (s *Server) Results(q wu.ResultsQuery) (rep wu.ResultsReply, err error) {
	ctx, cancel := context.WithTimeout(context.Background(), queryTimeout)
	defer cancel()
	qerr := s.group.QueryLatest(ctx, func(m *vpeer.Member) { rep, err = machineOf(m).Results(q) })
	if qerr != nil {
		return rep, wu.Errorf(wu.CodeInternal, "the scheduler is not ready; retry in a few seconds")
	}
	return rep, err
}

// machineOf is the scheduler a member applies the log to.
func machineOf(m *vpeer.Member) *sched.Machine { return m.Machine().(observed).Machine }

// query runs fn on the scheduler of a ready member of this process.
func (s *Server) query(fn func(*sched.Machine)) error {
	ctx, cancel := context.WithTimeout(context.Background(), queryTimeout)
	defer cancel()
	return s.group.Query(ctx, func(m *vpeer.Member) { fn(machineOf(m)) })
}

// speculate answers cmd from a copy of a ready member's state, without
// the log: the broken variant Config.speculate asks for.
func (s *Server) speculate(cmd wu.Command) []byte {
	var reply []byte
	_ = s.group.Query(context.Background(), func(m *vpeer.Member) {
		var buf bytes.Buffer
		if m.Machine().Snapshot(&buf) != nil {
			return
		}
		scratch := sched.New(s.cfg.Sched)
		if scratch.Restore(&buf) != nil {
			return
		}
		reply = scratch.Apply(vpeer.Entry{Seq: m.Applied() + 1, Time: m.Status().Time, Payload: wu.Encode(cmd)})
	})
	return reply
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
		s.trust.wg.Wait()
	}
	if s.gw != nil {
		s.gw.wg.Wait()
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
