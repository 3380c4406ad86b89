package server

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"time"

	natsserver "github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"

	wu "github.com/momonga-project/momonga/workunits"
)

// A mode is how a server reaches the project's NATS and what it does
// there: Embedded, Clustered, External, Joining.
type mode interface {
	// connect gives s its connection to the project's NATS, starting the
	// embedded server first where there is one.
	connect(s *Server) error
	// shared reports whether other processes serve the same project on
	// this NATS, each with its own gateway: the first records the policy,
	// and creating replicated assets waits for the cluster.
	shared() bool
	// joins reports whether this process finds the project's assets and
	// runs only members: no gateway, callout or stats page.
	joins() bool
	// edge reports whether this process is a leaf-node server at the
	// edge: NATS and the auth callout only, its volunteers' requests
	// carried to the core.
	edge() bool
	// servers is how many NATS servers the project's assets are spread
	// over, as far as this process knows (the group's default size is
	// Members on each); replicas the default replication.
	servers() int
	replicas() int
}

// Embedded is the default way to serve a project (`serve`, `demo`): a
// NATS server with JetStream embedded in this process, its store and the
// project's NATS keys in dataDir, listening for volunteers and tools on
// listen (host:port; port 0 picks a free one).
func Embedded(dataDir, listen string) Config {
	return Config{mode: embedded{dataDir: dataDir, listen: listen}, Members: 1}
}

// Clustered serves a project on an embedded NATS server that is one of the
// cluster c (`serve --cluster-name`): several processes, each with its own
// data directory, whose servers route to each other and replicate the
// project's streams. Every process runs members and a gateway.
func Clustered(dataDir, listen string, c Cluster) Config {
	return Config{mode: embedded{dataDir: dataDir, listen: listen, cluster: &c}, Members: 1}
}

// External serves a project on a NATS server or cluster run elsewhere
// (`serve --nats-url`), with no embedded server: its security is its own,
// the project's auth callout does not run there.
func External(url string, opts ...nats.Option) Config {
	return Config{mode: remote{url: url, opts: opts}, Members: 1}
}

// Joining runs members of a project already served on url (`serve
// --join`), with the policy the project recorded, and nothing else; on a
// secured project opts carry its credentials (nats.UserCredentials with
// its admin.creds) and the CA of its TLS certificate. A joined process may
// be a spare, with no member until a slot lapses; once one of its members
// holds the lease, it does the lease holder's duties.
func Joining(url string, opts ...nats.Option) Config {
	return Config{mode: remote{url: url, opts: opts, join: true}, Members: 1}
}

// Leaf serves volunteers at the edge (`serve --leaf-of`): a NATS server
// embedded in this process, listening on listen, that is a leaf node of
// the project's core servers (their leaf-node addresses, nats://HOST:PORT,
// any number; it connects to one at a time). It runs the auth callout, with
// the same keys as the core (dataDir holds a copy of the core's
// nats-keys.json) and the same permissions for each host, asking the core
// who a key belongs to; its volunteers' requests cross the leaf node into
// the project's account, where the core's gateways answer. It runs no
// member, gateway, JetStream or stats page: one process per few thousand
// volunteers, on any machine that reaches a core server's leaf-node port.
func Leaf(dataDir, listen string, hubs ...string) Config {
	return Config{mode: embedded{dataDir: dataDir, listen: listen, hubs: hubs}}
}

// embedded runs the project's NATS server in this process.
type embedded struct {
	dataDir, listen string
	cluster         *Cluster // nil: a server of its own
	hubs            []string // a leaf node of these core servers
}

func (e embedded) shared() bool { return e.cluster != nil }
func (e embedded) joins() bool  { return false }
func (e embedded) edge() bool   { return len(e.hubs) > 0 }

func (e embedded) servers() int {
	if e.cluster == nil {
		return 1
	}
	return e.cluster.Size()
}

func (e embedded) replicas() int { return min(3, e.servers()) }

func (e embedded) connect(s *Server) error {
	if e.cluster != nil {
		if err := e.cluster.check(); err != nil {
			return err
		}
	}
	if err := os.MkdirAll(e.dataDir, 0o700); err != nil {
		return fmt.Errorf("data directory: %w", err)
	}
	listen := e.listen
	if listen == "" {
		listen = "127.0.0.1:4222"
	}
	host, portStr, err := net.SplitHostPort(listen)
	if err != nil {
		return fmt.Errorf("--nats-listen %q: %w", listen, err)
	}
	port, err := strconv.Atoi(portStr)
	if err != nil {
		return fmt.Errorf("--nats-listen %q: bad port", listen)
	}
	if port == 0 {
		port = natsserver.RANDOM_PORT
	}
	opts := &natsserver.Options{
		// A server name of its own matters in a cluster (clusterOptions)
		// and for a leaf node; a single server keeps this one.
		ServerName: "momonga",
		Host:       host,
		Port:       port,
		JetStream:  !e.edge(),
		StoreDir:   filepath.Join(e.dataDir, "jetstream"),
		NoSigs:     true,
		MaxPayload: 1 << 20,
		// Volunteers are let in only once the project can answer them
		// (Server.listen): after a restart thousands reconnect at once,
		// and each connection that comes before the auth callout is
		// subscribed waits for the callout's time-out while starving the
		// start-up of the CPU it needs. A cluster's routes wait for the
		// client listener, so a cluster member listens from the start.
		DontListen: e.cluster == nil,
		// Shutdown goes through lame duck mode (Server.shutdown), which
		// need not spread the clients' closing over minutes: the project
		// is stopping, and the clients' reconnect jitter spreads the
		// storm when it comes back.
		LameDuckDuration:    200 * time.Millisecond,
		LameDuckGracePeriod: time.Millisecond,
		ProfPort:            s.cfg.ProfilePort,
		// Connections wait for the auth callout in turn when thousands
		// come at once; the clients wait as long (wu.ConnectTimeout).
		AuthTimeout: wu.AuthTimeout.Seconds(),
	}
	if err := s.secureOptions(opts, e.dataDir); err != nil {
		return err
	}
	if e.cluster != nil {
		if err := e.cluster.options(opts, e.dataDir, s.auth.authority); err != nil {
			return err
		}
	} else if e.edge() {
		// A leaf node has a name of its own, kept across restarts: a host
		// names the server it says hello through, and the project paces
		// the reconnections of each server's hosts by their number.
		if opts.ServerName, err = (Cluster{}).serverName(e.dataDir); err != nil {
			return err
		}
	}
	if err := s.leafOptions(opts, e.hubs); err != nil {
		return err
	}
	ns, err := natsserver.NewServer(opts)
	if err != nil {
		return fmt.Errorf("nats server: %w", err)
	}
	s.ns = ns
	s.listenLater = opts.DontListen
	go ns.Start()
	if !ns.ReadyForConnections(30 * time.Second) {
		return fmt.Errorf("nats server did not start listening on %s", listen)
	}
	if s.auth.authority != nil {
		s.auth.authority.Attach(ns)
	}
	s.nc, err = nats.Connect("", s.ProjectConnectOptions(nats.Name("momonga-project"), nats.MaxReconnects(-1))...)
	if err != nil {
		return fmt.Errorf("connect to embedded nats: %w", err)
	}
	return nil
}

// remote connects to a NATS server run elsewhere.
type remote struct {
	url  string
	opts []nats.Option
	join bool
}

func (r remote) shared() bool  { return !r.join }
func (r remote) joins() bool   { return r.join }
func (r remote) edge() bool    { return false }
func (r remote) servers() int  { return 1 }
func (r remote) replicas() int { return 1 }

func (r remote) connect(s *Server) error {
	nc, err := nats.Connect(r.url, append(r.opts, nats.Name("momonga-project member"), nats.MaxReconnects(-1))...)
	if err != nil {
		return fmt.Errorf("connect to %s: %w (a secured project needs its credentials: --creds DATA/%s)", r.url, err, AdminCredsFile)
	}
	s.nc = nc
	return nil
}
