package server

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	natsserver "github.com/nats-io/nats-server/v2/server"

	"github.com/momonga-project/momonga/project/auth"
)

// Cluster makes the embedded NATS server one of a cluster: several
// `momonga-project serve` processes, each with its own data directory,
// whose servers route to each other and replicate the project's streams
// (DESIGN §1). Every process runs its members of the scheduler's virtual
// peer and a gateway; the gateways share the volunteers' requests as a
// queue group.
type Cluster struct {
	Name   string // the cluster's name, the same on every server
	Listen string // host:port this server takes routes on
	// Routes are the nats://host:port route addresses of the cluster's
	// servers; this server's own may be among them.
	Routes []string
	// ServerName is this server's name in the cluster. It must stay the
	// same across restarts, or JetStream sees a new server: by default it is
	// made once and kept in DATA/server-name.
	ServerName string
}

// ServerNameFile keeps the name of a cluster's server, or of a leaf node, in
// its data directory.
const ServerNameFile = "server-name"

// routes parses the route URLs.
func (c Cluster) routes() ([]*url.URL, error) {
	var us []*url.URL
	for _, r := range c.Routes {
		u, err := url.Parse(r)
		if err != nil || u.Host == "" || (u.Scheme != "nats" && u.Scheme != "nats-route" && u.Scheme != "tls") {
			return nil, fmt.Errorf("route %q: give it as nats://HOST:PORT", r)
		}
		if _, _, err := net.SplitHostPort(u.Host); err != nil {
			return nil, fmt.Errorf("route %q: %w", r, err)
		}
		us = append(us, u)
	}
	return us, nil
}

// Size is how many servers the routes name, this one included.
func (c Cluster) Size() int {
	us, _ := c.routes()
	seen := map[string]bool{}
	self := false
	for _, u := range us {
		if u.Host == c.Listen {
			self = true
		}
		seen[u.Host] = true
	}
	if !self {
		return len(seen) + 1
	}
	return len(seen)
}

func (c Cluster) check() error {
	if c.Name == "" {
		return errors.New("cluster mode needs the cluster's name, the same on every server (--cluster-name)")
	}
	if c.Listen == "" {
		return errors.New("cluster mode needs the address this server takes routes on (--cluster-listen)")
	}
	if _, _, err := net.SplitHostPort(c.Listen); err != nil {
		return fmt.Errorf("--cluster-listen %q: %w", c.Listen, err)
	}
	if len(c.Routes) == 0 {
		return errors.New("cluster mode needs the route addresses of the cluster's servers (--routes nats://HOST:PORT,...)")
	}
	_, err := c.routes()
	return err
}

// options makes opts a server of the cluster, named as its data directory
// remembers; with the project's authority, only servers holding the
// project's keys may route to it.
func (c Cluster) options(opts *natsserver.Options, dataDir string, a *auth.Authority) error {
	name, err := c.serverName(dataDir)
	if err != nil {
		return err
	}
	host, port, _ := net.SplitHostPort(c.Listen)
	opts.ServerName = name
	opts.Cluster.Name = c.Name
	opts.Cluster.Host = host
	if opts.Cluster.Port, err = strconv.Atoi(port); err != nil {
		return fmt.Errorf("--cluster-listen %q: bad port", c.Listen)
	}
	routes, _ := c.routes()
	if a != nil {
		user, pass := a.RouteCredentials()
		opts.Cluster.Username, opts.Cluster.Password = user, pass
		for _, u := range routes {
			u.User = url.UserPassword(user, pass)
		}
	}
	opts.Routes = routes
	return nil
}

// serverName is ServerName, or the one kept in the data directory, made
// the first time.
func (c Cluster) serverName(dataDir string) (string, error) {
	if c.ServerName != "" {
		return c.ServerName, nil
	}
	p := filepath.Join(dataDir, ServerNameFile)
	b, err := os.ReadFile(p)
	if err == nil {
		if n := strings.TrimSpace(string(b)); n != "" {
			return n, nil
		}
	} else if !errors.Is(err, os.ErrNotExist) {
		return "", fmt.Errorf("server name: %w", err)
	}
	var r [4]byte
	_, _ = rand.Read(r[:])
	n := "momonga-" + hex.EncodeToString(r[:])
	if err := os.WriteFile(p, []byte(n+"\n"), 0o600); err != nil {
		return "", fmt.Errorf("server name: %w", err)
	}
	return n, nil
}

// clusterWait bounds how long a server waits for its cluster to be able
// to create replicated streams: the other servers may start later.
const clusterWait = 2 * time.Minute

// untilClusterReady runs fn, and on a shared NATS runs it again until it
// succeeds: until the cluster has elected its JetStream meta leader and
// enough servers have joined, creating a replicated stream fails.
func (s *Server) untilClusterReady(ctx context.Context, fn func(context.Context) error) error {
	if !s.cfg.mode.shared() {
		return fn(ctx)
	}
	ctx, cancel := context.WithTimeout(ctx, clusterWait)
	defer cancel()
	var logged time.Time
	for s.ns != nil && !s.ns.JetStreamIsCurrent() {
		// No meta leader yet: a request to create a stream would wait
		// for its time-out.
		select {
		case <-ctx.Done():
			return fmt.Errorf("the NATS cluster has elected no JetStream leader (are a majority of its servers up?): %w", ctx.Err())
		case <-time.After(100 * time.Millisecond):
		}
	}
	// Servers starting together create the same streams at once, and a
	// request that collides with another's may get no answer: try again
	// soon, then more patiently, as on a loaded machine creating a
	// replicated stream takes longer.
	for attempt := time.Second; ; attempt = min(2*attempt, 10*time.Second) {
		actx, cancel := context.WithTimeout(ctx, attempt)
		err := fn(actx)
		cancel()
		if err == nil {
			return nil
		}
		if time.Since(logged) > 5*time.Second {
			s.cfg.Logger.Info("waiting for the NATS cluster", "err", err)
			logged = time.Now()
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("the NATS cluster is not ready for %d replicas (are enough of its servers up?): %w", s.cfg.Replicas, err)
		case <-time.After(100 * time.Millisecond):
		}
	}
}
