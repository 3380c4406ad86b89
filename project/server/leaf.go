package server

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"strconv"
	"time"

	natsserver "github.com/nats-io/nats-server/v2/server"

	"github.com/momonga-project/momonga/project/auth"
)

// leafOptions sets up opts to take leaf-node connections (Config.LeafListen)
// and, for a server at the edge, to be a leaf node of hubs, binding the
// project's account to the core's with the project user's credentials.
func (s *Server) leafOptions(opts *natsserver.Options, hubs []string) error {
	if l := s.cfg.LeafListen; l != "" {
		host, port, err := net.SplitHostPort(l)
		if err != nil {
			return fmt.Errorf("--leaf-listen %q: %w", l, err)
		}
		if opts.LeafNode.Port, err = strconv.Atoi(port); err != nil {
			return fmt.Errorf("--leaf-listen %q: bad port", l)
		}
		opts.LeafNode.Host = host
		if opts.LeafNode.Port == 0 {
			opts.LeafNode.Port = natsserver.RANDOM_PORT
		}
	}
	if len(hubs) == 0 {
		return nil
	}
	if s.auth.authority == nil {
		return errors.New("a leaf-node server carries the core's per-host permissions: it cannot run open (--open)")
	}
	var urls []*url.URL
	tls := false
	for _, h := range hubs {
		u, err := url.Parse(h)
		if err != nil || u.Host == "" || (u.Scheme != "nats" && u.Scheme != "nats-leaf" && u.Scheme != "tls") {
			return fmt.Errorf("core leaf-node address %q: give it as nats://HOST:PORT (or tls://)", h)
		}
		tls = tls || u.Scheme == "tls"
		urls = append(urls, u)
	}
	opts.LeafNode.Remotes = []*natsserver.RemoteLeafOpts{{
		LocalAccount: s.auth.authority.ProjectAccount(),
		URLs:         urls,
		SignatureCB:  s.auth.authority.SignAsProject,
		TLS:          tls,
	}}
	return nil
}

// startEdge starts a leaf-node server's callout, which asks the core who a
// key belongs to.
func (s *Server) startEdge() (err error) {
	s.auth.callout, err = s.auth.authority.StartCallout(s.ns, auth.ServiceConfig{
		Directory: auth.RemoteDirectory{NC: s.nc, Logger: s.cfg.Logger.With("part", "auth")},
		Now:       s.cfg.Now,
		Logger:    s.cfg.Logger.With("part", "auth"),
	})
	if err == nil {
		err = s.auth.callout.Follow(s.nc)
	}
	if err != nil {
		return err
	}
	// Volunteers are let in once the core's directory answers; a core that
	// is down does not keep the leaf from serving once it is back.
	if err := auth.WaitForDirectory(s.nc, leafDirectoryWait); err != nil {
		s.cfg.Logger.Warn("leaf node: serving volunteers before the core answers; their handshakes are refused until it does", "err", err)
	}
	return nil
}

// leafDirectoryWait is how long a leaf-node server waits for the core's
// directory before it lets volunteers in anyway.
const leafDirectoryWait = 30 * time.Second

// serveDirectory answers leaf-node servers' callouts from this server's
// members.
func (s *Server) serveDirectory() error {
	if s.auth.authority == nil || s.cfg.Members == 0 {
		return nil
	}
	return auth.ServeDirectory(s.nc, s.reads())
}

// LeafURL is the address leaf-node servers connect to, or "" when this
// server takes none.
func (s *Server) LeafURL() string {
	if s.ns == nil || s.cfg.LeafListen == "" {
		return ""
	}
	v, err := s.ns.Varz(nil)
	if err != nil || v.LeafNode.Port <= 0 {
		return ""
	}
	host, _, _ := net.SplitHostPort(s.cfg.LeafListen)
	return "nats://" + net.JoinHostPort(host, strconv.Itoa(v.LeafNode.Port))
}
