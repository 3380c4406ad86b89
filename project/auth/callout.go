package auth

import (
	"encoding/base64"
	"fmt"
	"log/slog"
	"runtime"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/jwt/v2"
	natsserver "github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nkeys"

	wu "github.com/momonga-project/momonga/workunits"
)

// AttachUserPrefix starts the user name of a connection that attaches a
// host: AttachUserPrefix + the host's public nkey. Its password is the
// account key.
const AttachUserPrefix = wu.AttachUser + "/"

// Directory is what the callout asks of the scheduler's replicated state.
type Directory interface {
	HostByNKey(nkey string) (wu.HostCredential, bool)
	UserByKeyHash(h wu.Hash) (string, bool)
}

// ServiceConfig configures the callout service.
type ServiceConfig struct {
	Authority *Authority
	Directory Directory
	// Ready, when set, holds answers back until it is closed: until the
	// scheduler has replayed its log, a host it knows would look unknown.
	Ready <-chan struct{}
	// Now is the clock throttling is measured with; default time.Now.
	Now    func() time.Time
	Logger *slog.Logger
}

// Service is the auth callout: it answers the server's authorisation
// requests for every connection that is not the project's own.
type Service struct {
	cfg  ServiceConfig
	subs []*nats.Subscription
	own  *nats.Conn // the connection StartCallout made, closed with the Service

	mu        sync.Mutex
	throttled map[string]time.Time // host id → refused until
}

// StartService subscribes the callout on nc, a connection of the callout
// user (Authority.CalloutCreds). The caller closes nc after Close.
func StartService(nc *nats.Conn, cfg ServiceConfig) (*Service, error) {
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	s := &Service{cfg: cfg, throttled: map[string]time.Time{}}
	// A queue group: in a cluster each server asks the callout of its own
	// process, which keeps the host accounts in that server's resolver.
	// A subscription's messages are handled one at a time; one per core
	// in the group answers as many at once as the machine can, and no
	// more, when thousands of hosts reconnect together.
	for range runtime.GOMAXPROCS(0) {
		sub, err := nc.QueueSubscribe(natsserver.AuthCalloutSubject, "auth", s.handle)
		if err != nil {
			s.Close()
			return nil, fmt.Errorf("auth callout: %w", err)
		}
		s.subs = append(s.subs, sub)
	}
	return s, nc.Flush()
}

// StartCallout starts the callout on the embedded server ns, on an
// in-process connection with the callout's own credentials (cfg.Authority
// is a); Close closes that connection too.
func (a *Authority) StartCallout(ns *natsserver.Server, cfg ServiceConfig) (*Service, error) {
	c, err := a.CalloutCreds()
	if err != nil {
		return nil, err
	}
	nc, err := nats.Connect("", nats.InProcessServer(ns), nats.UserJWTAndSeed(c.JWT, c.Seed), nats.Name("momonga-auth"), nats.MaxReconnects(-1))
	if err != nil {
		return nil, fmt.Errorf("connect the auth callout: %w", err)
	}
	cfg.Authority = a
	s, err := StartService(nc, cfg)
	if err != nil {
		nc.Close()
		return nil, err
	}
	s.own = nc
	return s, nil
}

// Close stops answering.
func (s *Service) Close() {
	for _, sub := range s.subs {
		_ = sub.Unsubscribe()
	}
	if s.own != nil {
		s.own.Close()
	}
}

// Throttle refuses host id for d and closes its connections now: what the
// gateway does to a host that floods it.
func (s *Service) Throttle(id string, d time.Duration) error {
	s.mu.Lock()
	s.throttled[id] = s.cfg.Now().Add(d)
	s.mu.Unlock()
	return s.cfg.Authority.Block(id)
}

// Revoked closes the connections of hosts whose credentials the project
// withdrew; the callout refuses them from then on.
func (s *Service) Revoked(ids []string) {
	for _, id := range ids {
		if err := s.cfg.Authority.Block(id); err != nil {
			s.cfg.Logger.Warn("block revoked host", "host", id, "err", err)
		}
	}
}

func (s *Service) handle(msg *nats.Msg) {
	if s.cfg.Ready != nil {
		<-s.cfg.Ready
	}
	req, err := jwt.DecodeAuthorizationRequestClaims(string(msg.Data))
	if err != nil {
		s.cfg.Logger.Warn("auth callout: malformed request", "err", err)
		return
	}
	// The server gives up on a request after its auth time-out and closes
	// the connection, which the client opens again. In a reconnection
	// storm answering requests nobody waits for any more would only delay
	// those still waited for. Expires is in whole seconds of the server's
	// own wall clock.
	if req.Expires != 0 && time.Now().Unix() > req.Expires {
		s.cfg.Logger.Debug("auth callout: request expired before it was answered", "client", req.ClientInformation.Host)
		return
	}
	resp := jwt.NewAuthorizationResponseClaims(req.UserNkey)
	resp.Audience = req.Server.ID
	user, refusal := s.authorize(req)
	if refusal != "" {
		resp.Error = refusal
		s.cfg.Logger.Info("connection refused", "client", req.ClientInformation.Host, "reason", refusal)
	} else {
		resp.Jwt = user
	}
	token, err := resp.Encode(s.cfg.Authority.keys.Auth)
	if err != nil {
		s.cfg.Logger.Error("auth callout: encode response", "err", err)
		return
	}
	_ = msg.Respond([]byte(token))
}

// authorize decides a connection: the user JWT to give it, or why not.
func (s *Service) authorize(req *jwt.AuthorizationRequestClaims) (userJWT, refusal string) {
	co := req.ConnectOptions
	switch {
	case co.Nkey != "":
		return s.authorizeHost(req)
	case strings.HasPrefix(co.Username, AttachUserPrefix):
		nkey := strings.TrimPrefix(co.Username, AttachUserPrefix)
		if !nkeys.IsValidPublicUserKey(nkey) {
			return "", "attach: the user name does not end in a public user nkey"
		}
		if !wu.ValidAccountKey(co.Password) {
			return "", "attach: malformed account key"
		}
		if _, ok := s.cfg.Directory.UserByKeyHash(wu.AccountKeyHash(co.Password)); !ok {
			return "", "attach: no user has this account key"
		}
		// One request is all an attaching connection needs: it is closed a
		// minute later, so that nobody holds the attach account's
		// connections for long. The server checks the expiry against its
		// own wall clock.
		j, err := s.cfg.Authority.attachUserJWT(nkey, req.UserNkey, time.Now().Add(time.Minute))
		if err != nil {
			return "", "internal error"
		}
		return j, ""
	}
	return "", "no host credentials: attach this host first (momonga attach)"
}

func (s *Service) authorizeHost(req *jwt.AuthorizationRequestClaims) (string, string) {
	co := req.ConnectOptions
	if !verifyNonce(co.Nkey, req.ClientInformation.Nonce, co.SignedNonce) {
		return "", "the nonce's signature does not match the nkey"
	}
	hc, ok := s.cfg.Directory.HostByNKey(co.Nkey)
	if !ok {
		return "", "unknown host key: attach the host first"
	}
	if hc.Revoked {
		s.Revoked([]string{hc.ID})
		return "", "host " + hc.ID + " has been revoked"
	}
	s.mu.Lock()
	until, throttled := s.throttled[hc.ID]
	now := s.cfg.Now()
	if throttled && !now.Before(until) {
		delete(s.throttled, hc.ID)
		throttled = false
	}
	s.mu.Unlock()
	if throttled {
		return "", fmt.Sprintf("host %s is throttled for flooding the project, for %s more", hc.ID, until.Sub(now).Round(time.Second))
	}
	j, err := s.cfg.Authority.hostUserJWT(hc.ID, req.UserNkey)
	if err != nil {
		return "", "internal error"
	}
	if refusal := s.cfg.Authority.admit(hc.ID, req.Server.ID, req.ClientInformation.ID); refusal != "" {
		return "", refusal
	}
	return j, ""
}

// verifyNonce checks that sig, as a NATS client sends it, is nkey's
// signature of the server's nonce.
func verifyNonce(nkey, nonce, sig string) bool {
	if nonce == "" || sig == "" {
		return false
	}
	kp, err := nkeys.FromPublicKey(nkey)
	if err != nil {
		return false
	}
	raw, err := base64.RawURLEncoding.DecodeString(sig)
	if err != nil {
		if raw, err = base64.StdEncoding.DecodeString(sig); err != nil {
			return false
		}
	}
	return kp.Verify([]byte(nonce), raw) == nil
}
