package server

import (
	"crypto/ed25519"
	"fmt"
	"log/slog"
	"path/filepath"
	"time"

	natsserver "github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"

	"github.com/momonga-project/momonga/project/auth"
)

// Trust configures who may connect to the project and what they may send
// (DESIGN §4, project/auth, project/gateway).
type Trust struct {
	// Open turns NATS authentication off: any client may do anything, as
	// on a server without accounts. It is for trials on one machine and for
	// tests; by default volunteers need credentials of their own.
	Open bool
	// TLSCert and TLSKey, PEM files, make the NATS listener require TLS.
	TLSCert, TLSKey string
	// SigningKey is the public key apps must be signed with. Without one no
	// app can be published.
	SigningKey ed25519.PublicKey
	// HostLimits bound each host on the NATS server (default
	// auth.DefaultLimits).
	HostLimits auth.Limits
	// HostRate and HostBurst bound each host's requests per second at the
	// gateway; FloodAfter refusals within a second throttle the host (its
	// connections closed, new ones refused) for ThrottleFor (defaults in
	// gateway.NewRateLimiter; a minute).
	HostRate    float64
	HostBurst   int
	FloodAfter  int
	ThrottleFor time.Duration
	// ValidateInterval is how often the validator looks for outputs to
	// compare without being prompted (default one second).
	ValidateInterval time.Duration
	// Now is the clock of rate limits, throttling and the validator;
	// default time.Now.
	Now func() time.Time
}

func (t Trust) withDefaults() Trust {
	if t.ThrottleFor <= 0 {
		t.ThrottleFor = time.Minute
	}
	if t.Now == nil {
		t.Now = time.Now
	}
	return t
}

// AdminCredsFile is where a secured server writes the credentials of the
// project's tools (`momonga-project --creds`), in its data directory.
const AdminCredsFile = "admin.creds"

// authParts are a secured embedded server's: its operator and accounts,
// and the auth callout.
type authParts struct {
	authority *auth.Authority
	callout   *auth.Service
	credsPath string
}

// secureOptions sets up operator mode and TLS on opts, the keys and the
// tools' credentials in dataDir.
func (s *Server) secureOptions(opts *natsserver.Options, dataDir string) error {
	if s.cfg.TLSCert != "" || s.cfg.TLSKey != "" {
		tc, err := natsserver.GenTLSConfig(&natsserver.TLSConfigOpts{CertFile: s.cfg.TLSCert, KeyFile: s.cfg.TLSKey})
		if err != nil {
			return fmt.Errorf("TLS certificate: %w", err)
		}
		opts.TLSConfig = tc
		opts.TLSTimeout = 5
	}
	if s.cfg.Open {
		return nil
	}
	keys, err := auth.LoadOrCreateKeys(dataDir)
	if err != nil {
		return err
	}
	s.auth.authority = auth.NewAuthority(keys, s.cfg.HostLimits)
	if err := s.auth.authority.Configure(opts); err != nil {
		return err
	}
	s.auth.credsPath = filepath.Join(dataDir, AdminCredsFile)
	return s.auth.authority.WriteProjectCreds(s.auth.credsPath)
}

// ProjectConnectOptions are the options of an in-process connection of the
// project's own, with its credentials when the server is secured, followed
// by extra.
func (s *Server) ProjectConnectOptions(extra ...nats.Option) []nats.Option {
	opts := []nats.Option{nats.InProcessServer(s.ns)}
	if s.auth.authority != nil {
		c, err := s.auth.authority.ProjectCreds()
		if err == nil {
			opts = append(opts, nats.UserJWTAndSeed(c.JWT, c.Seed))
		}
	}
	return append(opts, extra...)
}

// AdminCreds is the path of the project tools' credentials, or "" for an
// open server.
func (s *Server) AdminCreds() string { return s.auth.credsPath }

// startCallout starts the auth callout of a secured server. It answers only
// once the scheduler has replayed its log.
func (s *Server) startCallout() (err error) {
	if s.auth.authority == nil {
		return nil
	}
	s.auth.callout, err = s.auth.authority.StartCallout(s.ns, auth.ServiceConfig{
		Directory: s.reads(),
		Ready:     s.group.Ready(),
		Now:       s.cfg.Now,
		Logger:    s.cfg.Logger.With("part", "auth"),
	})
	if err == nil {
		err = s.auth.callout.Follow(s.nc)
	}
	return err
}

// throttle cuts off a host that floods the gateway, on every server of the
// project: each callout follows the cut-offs.
func (s *Server) throttle(host string) {
	if s.auth.callout == nil {
		return
	}
	if err := auth.PublishCutoff(s.nc, auth.Cutoff{Host: host, For: s.cfg.ThrottleFor}); err != nil {
		s.cfg.Logger.Warn("throttle host", "host", host, "err", err)
	}
}

// cutoffs tells every server's callout (the core's, the leaf nodes') of
// the hosts revoked: the duties' Revoker.
type cutoffs struct {
	nc     *nats.Conn
	logger *slog.Logger
}

func (c cutoffs) Revoked(hosts []string) {
	for _, h := range hosts {
		if err := auth.PublishCutoff(c.nc, auth.Cutoff{Host: h}); err != nil {
			c.logger.Warn("revoke host", "host", h, "err", err)
		}
	}
}
