package auth

import (
	"fmt"
	"sync"
	"time"

	"github.com/nats-io/jwt/v2"
	natsserver "github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nkeys"

	"github.com/momonga-project/momonga/project/blobs"
	wu "github.com/momonga-project/momonga/workunits"
)

// Limits bound what one host may do on the NATS server. NATS enforces them
// on the host's own account; it has no limit on message rates, which the
// gateway enforces instead.
type Limits struct {
	Connections   int64 // connections open at once
	Subscriptions int64 // per connection (NATS counts them so)
	Payload       int64 // bytes of one message
}

// DefaultLimits fit the volunteer client: one connection per project (two
// while it reconnects), a handful of subscriptions, blob chunks of
// blobs.ChunkBytes plus headers.
func DefaultLimits() Limits {
	return Limits{Connections: 4, Subscriptions: 16, Payload: blobs.ChunkBytes + 16<<10}
}

// Authority issues the JWTs of the operator, the accounts and users, and
// keeps the host accounts in the server's resolver.
type Authority struct {
	keys     *Keys
	limits   Limits
	resolver *natsserver.MemAccResolver

	mu      sync.Mutex
	ns      *natsserver.Server
	blocked map[string]bool // host id → its account's connection limit is 0
	stored  map[string]bool // host id → its account JWT is in the resolver
}

// NewAuthority prepares the JWTs for keys.
func NewAuthority(keys *Keys, limits Limits) *Authority {
	if limits == (Limits{}) {
		limits = DefaultLimits()
	}
	return &Authority{keys: keys, limits: limits, resolver: &natsserver.MemAccResolver{}, blocked: map[string]bool{}, stored: map[string]bool{}}
}

// Configure puts the server in operator mode: trusted operator, system
// account, resolver with the fixed accounts, and the sentinel that sends
// every connection without credentials of its own to the callout.
func (a *Authority) Configure(opts *natsserver.Options) error {
	k := a.keys
	op := jwt.NewOperatorClaims(pub(k.Operator))
	op.Name = "momonga"
	op.SystemAccount = pub(k.System)
	opJWT, err := op.Encode(k.Operator)
	if err != nil {
		return fmt.Errorf("operator JWT: %w", err)
	}
	if op, err = jwt.DecodeOperatorClaims(opJWT); err != nil {
		return err
	}

	sys := jwt.NewAccountClaims(pub(k.System))
	sys.Name = "SYS"

	project := jwt.NewAccountClaims(pub(k.Project))
	project.Name = "PROJECT"
	project.Limits.JetStreamLimits = jwt.JetStreamLimits{MemoryStorage: jwt.NoLimit, DiskStorage: jwt.NoLimit, Streams: jwt.NoLimit, Consumer: jwt.NoLimit, MaxAckPending: jwt.NoLimit}
	project.Exports.Add(
		&jwt.Export{Name: "volunteers", Subject: "vol.>", Type: jwt.Service, ResponseType: jwt.ResponseTypeSingleton},
		&jwt.Export{Name: "attach", Subject: wu.SubjectAttachPrefix + ">", Type: jwt.Service, ResponseType: jwt.ResponseTypeSingleton},
		// Each host's account imports its own push subject (hostAccountClaims).
		&jwt.Export{Name: "push", Subject: jwt.Subject(wu.PushSubject("*")), Type: jwt.Stream},
	)

	authAcc := jwt.NewAccountClaims(pub(k.Auth))
	authAcc.Name = "AUTH"
	authAcc.Authorization.AuthUsers.Add(pub(k.CalloutUser))
	authAcc.Authorization.AllowedAccounts.Add(jwt.AnyAccount)

	attach := jwt.NewAccountClaims(pub(k.Attach))
	attach.Name = "ATTACH"
	attach.Imports.Add(&jwt.Import{Name: "attach", Subject: wu.SubjectAttachPrefix + ">", Account: pub(k.Project), Type: jwt.Service})
	attach.Limits.Conn = 64
	attach.Limits.Subs = 8
	attach.Limits.Payload = wu.MaxMessageBytes
	attach.Limits.LeafNodeConn = 0

	for _, c := range []struct {
		claims *jwt.AccountClaims
	}{{sys}, {project}, {authAcc}, {attach}} {
		s, err := c.claims.Encode(k.Operator)
		if err != nil {
			return fmt.Errorf("account JWT %s: %w", c.claims.Name, err)
		}
		if err := a.resolver.Store(c.claims.Subject, s); err != nil {
			return err
		}
	}

	// The sentinel: a bearer user of AUTH that may do nothing. The server
	// gives it to any connection that brings no JWT, which sends that
	// connection's credentials (nkey and signature, or user and password)
	// to the callout.
	sentinelKP, err := nkeys.CreateUser()
	if err != nil {
		return err
	}
	sentinel := jwt.NewUserClaims(pub(sentinelKP))
	sentinel.Name = "sentinel"
	sentinel.BearerToken = true
	sentinel.Pub.Deny.Add(">")
	sentinel.Sub.Deny.Add(">")
	sentinelJWT, err := sentinel.Encode(k.Auth)
	if err != nil {
		return err
	}

	opts.TrustedOperators = []*jwt.OperatorClaims{op}
	opts.SystemAccount = pub(k.System)
	opts.AccountResolver = a.resolver
	opts.DefaultSentinel = sentinelJWT
	return nil
}

// Attach binds the authority to the running server, for the host accounts
// it will change.
func (a *Authority) Attach(ns *natsserver.Server) {
	a.mu.Lock()
	a.ns = ns
	a.mu.Unlock()
}

// Creds are a user's JWT and nkey seed.
type Creds struct {
	JWT  string
	Seed string
}

// File is the creds file format NATS tools read (`nats --creds`).
func (c Creds) File() ([]byte, error) { return jwt.FormatUserConfig(c.JWT, []byte(c.Seed)) }

// ProjectCreds are the credentials of the project's services and tools: a
// user of PROJECT with every permission.
func (a *Authority) ProjectCreds() (Creds, error) {
	uc := jwt.NewUserClaims(pub(a.keys.ProjectUser))
	uc.Name = "momonga-project"
	return a.creds(uc, a.keys.Project, a.keys.ProjectUser)
}

// CalloutCreds are the callout service's: an auth user of AUTH.
func (a *Authority) CalloutCreds() (Creds, error) {
	uc := jwt.NewUserClaims(pub(a.keys.CalloutUser))
	uc.Name = "momonga-auth"
	return a.creds(uc, a.keys.Auth, a.keys.CalloutUser)
}

func (a *Authority) creds(uc *jwt.UserClaims, account, user nkeys.KeyPair) (Creds, error) {
	s, err := uc.Encode(account)
	if err != nil {
		return Creds{}, err
	}
	seed, err := user.Seed()
	if err != nil {
		return Creds{}, err
	}
	return Creds{JWT: s, Seed: string(seed)}, nil
}

// WriteProjectCreds writes the project's creds file for its tools, readable
// by its owner only.
func (a *Authority) WriteProjectCreds(path string) error {
	c, err := a.ProjectCreds()
	if err != nil {
		return err
	}
	b, err := c.File()
	if err != nil {
		return err
	}
	return writePrivate(path, b)
}

// hostAccountClaims are the claims of host id's account; a blocked host's
// account allows no connection.
func (a *Authority) hostAccountClaims(id string, blocked bool) *jwt.AccountClaims {
	ac := jwt.NewAccountClaims(pub(a.keys.hostAccount(id)))
	ac.Name = "host " + id
	ac.Imports.Add(
		&jwt.Import{Name: "vol", Subject: jwt.Subject(wu.VolunteerSubject(id, ">")), Account: pub(a.keys.Project), Type: jwt.Service},
		// The project's pushes to this host arrive in its own inbox, the
		// only subject its user may subscribe to.
		&jwt.Import{Name: "push", Subject: jwt.Subject(wu.PushSubject(id)), LocalSubject: jwt.RenamingSubject(wu.PushInbox(id)), Account: pub(a.keys.Project), Type: jwt.Stream},
	)
	ac.Limits.Conn = a.limits.Connections
	if blocked {
		ac.Limits.Conn = 0
	}
	ac.Limits.Subs = a.limits.Subscriptions
	ac.Limits.Payload = a.limits.Payload
	ac.Limits.LeafNodeConn = 0
	ac.Limits.Imports = 2
	ac.Limits.Exports = 0
	ac.Limits.DisallowBearer = true
	return ac
}

// ensureHost puts host id's account in the resolver, unblocked, and returns
// its key.
func (a *Authority) ensureHost(id string) (nkeys.KeyPair, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	kp := a.keys.hostAccount(id)
	if a.stored[id] && !a.blocked[id] {
		return kp, nil
	}
	if err := a.storeHostLocked(id, false); err != nil {
		return nil, err
	}
	return kp, nil
}

// Block sets host id's connection limit to zero: the server closes its
// connections now and refuses new ones, until the account is stored again
// (ensureHost) by a later authorisation.
func (a *Authority) Block(id string) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.blocked[id] {
		return nil
	}
	return a.storeHostLocked(id, true)
}

func (a *Authority) storeHostLocked(id string, blocked bool) error {
	ac := a.hostAccountClaims(id, blocked)
	s, err := ac.Encode(a.keys.Operator)
	if err != nil {
		return fmt.Errorf("account JWT of host %s: %w", id, err)
	}
	if err := a.resolver.Store(ac.Subject, s); err != nil {
		return err
	}
	a.stored[id] = true
	a.blocked[id] = blocked
	// An account the server has loaded keeps its old claims until told:
	// update it, which also closes connections over a lowered limit.
	if a.ns != nil {
		if acc, err := a.ns.LookupAccount(ac.Subject); err == nil {
			a.ns.UpdateAccountClaims(acc, ac)
		}
	}
	return nil
}

// hostUserJWT is the JWT the callout issues for a connection of host id,
// whose server-side user key is userKey.
func (a *Authority) hostUserJWT(id, userKey string, account nkeys.KeyPair) (string, error) {
	uc := jwt.NewUserClaims(userKey)
	uc.Name = "host " + id
	uc.Pub.Allow.Add(wu.VolunteerSubject(id, ">"))
	uc.Sub.Allow.Add(wu.InboxPrefix(id) + ".>")
	return uc.Encode(account)
}

// attachUserJWT is the JWT of a connection that attaches the host with
// public key nkey: it may send one kind of request and read its replies,
// until expires (which the server checks against its own clock).
func (a *Authority) attachUserJWT(nkey, userKey string, expires time.Time) (string, error) {
	uc := jwt.NewUserClaims(userKey)
	uc.Name = "attach " + nkey[:12]
	uc.Pub.Allow.Add(wu.AttachSubject(nkey))
	uc.Sub.Allow.Add(wu.InboxPrefix(nkey) + ".>")
	uc.Expires = expires.Unix()
	return uc.Encode(a.keys.Attach)
}

// RouteCredentials are the user and password of the routes between the
// servers of a cluster. They derive from the project's keys, so the servers
// of a cluster share them by sharing the keys file.
func (a *Authority) RouteCredentials() (user, password string) {
	return "momonga-route", a.keys.routePassword()
}
