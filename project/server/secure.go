package server

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"fmt"
	"path/filepath"
	"sync"
	"time"

	natsserver "github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"

	"github.com/momonga-project/momonga/project/accounting"
	"github.com/momonga-project/momonga/project/auth"
	"github.com/momonga-project/momonga/project/blobs"
	"github.com/momonga-project/momonga/project/sched"
	"github.com/momonga-project/momonga/project/validator"
	"github.com/momonga-project/momonga/vpeer"
	wu "github.com/momonga-project/momonga/workunits"
)

// Trust configures who may connect to the project and what they may send
// (DESIGN §4, project/auth).
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
	// HostLimits bound each host on the NATS server.
	HostLimits auth.Limits
	// HostRate and HostBurst bound each host's requests per second at the
	// gateway; FloodAfter refusals within a second throttle the host (its
	// connections closed, new ones refused) for ThrottleFor.
	HostRate    float64
	HostBurst   int
	FloodAfter  int
	ThrottleFor time.Duration
	// ValidateInterval is how often the validator looks for outputs to
	// compare.
	ValidateInterval time.Duration
	// Now is the clock of rate limits and throttling; default time.Now.
	Now func() time.Time
}

func (t Trust) withDefaults() Trust {
	if t.HostLimits == (auth.Limits{}) {
		t.HostLimits = auth.DefaultLimits()
	}
	if t.HostRate <= 0 {
		t.HostRate = 20
	}
	if t.HostBurst <= 0 {
		t.HostBurst = 200
	}
	if t.FloodAfter <= 0 {
		// Far above what a big host starting many tasks at once is
		// refused, far below a flood (hundreds of thousands a second).
		t.FloodAfter = 1000
	}
	if t.ThrottleFor <= 0 {
		t.ThrottleFor = time.Minute
	}
	if t.ValidateInterval <= 0 {
		t.ValidateInterval = time.Second
	}
	if t.Now == nil {
		t.Now = time.Now
	}
	return t
}

// AdminCredsFile is where a secured server writes the credentials of the
// project's tools (`momonga-project --creds`), in its data directory.
const AdminCredsFile = "admin.creds"

type trustParts struct {
	authority *auth.Authority
	calloutNC *nats.Conn
	callout   *auth.Service
	wake      chan struct{} // a result or a verdict was applied: compare
	revoked   chan struct{} // a host was revoked: close its connections
	wg        sync.WaitGroup
}

// secureOptions sets up operator mode and TLS on opts.
func (s *Server) secureOptions(opts *natsserver.Options) error {
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
	keys, err := auth.LoadOrCreateKeys(s.cfg.DataDir)
	if err != nil {
		return err
	}
	s.trust.authority = auth.NewAuthority(keys, s.cfg.HostLimits)
	if err := s.trust.authority.Configure(opts); err != nil {
		return err
	}
	return s.trust.authority.WriteProjectCreds(filepath.Join(s.cfg.DataDir, AdminCredsFile))
}

// ProjectConnectOptions are the options of an in-process connection of the
// project's own, with its credentials when the server is secured, followed
// by extra.
func (s *Server) ProjectConnectOptions(extra ...nats.Option) []nats.Option {
	opts := []nats.Option{nats.InProcessServer(s.ns)}
	if s.trust.authority != nil {
		c, err := s.trust.authority.ProjectCreds()
		if err == nil {
			opts = append(opts, nats.UserJWTAndSeed(c.JWT, c.Seed))
		}
	}
	return append(opts, extra...)
}

// AdminCreds is the path of the project tools' credentials, or "" for an
// open server.
func (s *Server) AdminCreds() string {
	if s.trust.authority == nil {
		return ""
	}
	return filepath.Join(s.cfg.DataDir, AdminCredsFile)
}

// startCallout starts the auth callout of a secured server. It answers only
// once the scheduler has replayed its log.
func (s *Server) startCallout() error {
	a := s.trust.authority
	if a == nil {
		return nil
	}
	c, err := a.CalloutCreds()
	if err != nil {
		return err
	}
	s.trust.calloutNC, err = nats.Connect("", nats.InProcessServer(s.ns), nats.UserJWTAndSeed(c.JWT, c.Seed), nats.Name("momonga-auth"), nats.MaxReconnects(-1))
	if err != nil {
		return fmt.Errorf("connect the auth callout: %w", err)
	}
	s.trust.callout, err = auth.StartService(s.trust.calloutNC, auth.ServiceConfig{
		Authority: a,
		Directory: directory{s},
		Ready:     s.group.Ready(),
		Now:       s.cfg.Now,
		Logger:    s.cfg.Logger.With("part", "auth"),
	})
	return err
}

func (s *Server) stopCallout() {
	if s.trust.callout != nil {
		s.trust.callout.Close()
	}
	if s.trust.calloutNC != nil {
		s.trust.calloutNC.Close()
	}
}

// throttle cuts off a host that floods the gateway.
func (s *Server) throttle(host string) {
	if s.trust.callout == nil {
		return
	}
	if err := s.trust.callout.Throttle(host, s.cfg.ThrottleFor); err != nil {
		s.cfg.Logger.Warn("throttle host", "host", host, "err", err)
	}
}

// directory answers the callout from the scheduler's state.
type directory struct{ s *Server }

func (d directory) HostByNKey(nkey string) (hc wu.HostCredential, ok bool) {
	_ = d.s.query(func(m *sched.Machine) { hc, ok = m.HostByNKey(nkey) })
	return hc, ok
}

func (d directory) UserByKeyHash(h wu.Hash) (id string, ok bool) {
	_ = d.s.query(func(m *sched.Machine) { id, ok = m.UserByKeyHash(h) })
	return id, ok
}

// Accounts lists users and teams, e-mail addresses included.
func (s *Server) Accounts() (rep wu.AccountsReply) {
	var (
		now     time.Time
		pending []accounting.Grant
		acked   uint64
	)
	err := s.query(func(m *sched.Machine) {
		rep, now = m.Accounts(), m.Now()
		pending, acked = outbox(m, 0)
	})
	if err != nil {
		return wu.AccountsReply{V: wu.WireVersion, Error: wu.Errorf(wu.CodeInternal, "the scheduler is not ready; retry in a few seconds")}
	}
	ctx, cancel := context.WithTimeout(context.Background(), queryTimeout)
	defer cancel()
	if err := s.fillCredit(ctx, now, acked, pending, nil, rep.Users, rep.Teams); err != nil {
		return wu.AccountsReply{V: wu.WireVersion, Error: wu.Errorf(wu.CodeInternal, "the accounting peer is not ready; retry in a few seconds")}
	}
	return rep
}

// observed is the scheduler as the member applies it, telling the server's
// side effects what was applied: revocations close connections, results
// and verdicts wake the validator and the forwarder of credit.
type observed struct {
	*sched.Machine
	s *Server
}

func (s *Server) observe(m *sched.Machine) vpeer.StateMachine { return observed{m, s} }

func (o observed) Apply(e vpeer.Entry) []byte {
	reply := o.Machine.Apply(e)
	switch opOf(e.Payload) {
	case wu.OpHostRevoke:
		signal(o.s.trust.revoked)
	case wu.OpResult, wu.OpCompare:
		signal(o.s.trust.wake)
		signal(o.s.outputs)
	}
	return reply
}

// opOf reads a Command's op from the start of its encoding, where Encode
// puts it, without decoding the whole record.
func opOf(payload []byte) string {
	rest, ok := bytes.CutPrefix(payload, []byte(`{"v":1,"op":"`))
	if !ok {
		return ""
	}
	op, _, ok := bytes.Cut(rest, []byte(`"`))
	if !ok {
		return ""
	}
	return string(op)
}

func signal(c chan struct{}) {
	select {
	case c <- struct{}{}:
	default:
	}
}

// startLeaseDuties starts, in a process that runs members of the
// scheduler's virtual peer, the side effects its lease holder does once
// for the group (DESIGN §5): comparing outputs (the validator) and deleting
// old checkpoints. They run in every such process, joined ones too, and act
// only while a member of this process holds the lease, so they follow the
// lease wherever it goes.
func (s *Server) startLeaseDuties(ctx context.Context, store *blobs.Store) {
	s.trust.wg.Go(func() {
		validator.Run(ctx, validator.Config{
			Pending: func(limit int) (p []sched.Comparison) {
				if !s.group.Leading() {
					return nil // the lease holder's process compares
				}
				_ = s.query(func(m *sched.Machine) { p = m.PendingComparisons(limit) })
				return p
			},
			Blob: func(ctx context.Context, h wu.Hash) ([]byte, error) {
				n, ok, err := store.Size(ctx, h)
				if err == nil && (!ok || n > wu.MaxCompareBytes) {
					err = fmt.Errorf("output %s is missing or over %d bytes", h.Short(), wu.MaxCompareBytes)
				}
				if err != nil {
					return nil, err
				}
				return store.Get(ctx, h)
			},
			Append:   s.log.Append,
			Interval: s.cfg.ValidateInterval,
			Wake:     s.trust.wake,
			Now:      s.cfg.Now,
			Logger:   s.cfg.Logger.With("part", "validator"),
		})
	})
	s.trust.wg.Go(func() { s.collectCheckpoints(ctx, s.log, store) })
}

// startRevokeLoop starts, on a secured server, the loop that closes
// revoked hosts' connections.
func (s *Server) startRevokeLoop(ctx context.Context) {
	if s.trust.callout == nil {
		return
	}
	signal(s.trust.revoked) // hosts revoked before a restart
	s.trust.wg.Go(func() {
		for {
			select {
			case <-ctx.Done():
				return
			case <-s.trust.revoked:
			}
			var ids []string
			_ = s.query(func(m *sched.Machine) { ids = m.RevokedHosts() })
			s.trust.callout.Revoked(ids)
		}
	})
}
