package auth

import (
	"fmt"
	"slices"
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
// counts each host's connections to its server.
type Authority struct {
	keys     *Keys
	limits   Limits
	resolver *natsserver.MemAccResolver

	mu     sync.Mutex
	ns     *natsserver.Server
	conns  map[string][]uint64 // host id → ids of the connections authorised on ns, some maybe closed since
	admits int                 // since the last sweep of conns
}

// NewAuthority prepares the JWTs for keys.
func NewAuthority(keys *Keys, limits Limits) *Authority {
	if limits == (Limits{}) {
		limits = DefaultLimits()
	}
	return &Authority{keys: keys, limits: limits, resolver: &natsserver.MemAccResolver{}, conns: map[string][]uint64{}}
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
		// The volunteers' account imports the pushes to idle hosts; each
		// host's user may subscribe to its own only.
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

	// Every host's users, each allowed only its own subjects. NATS applies
	// an account's payload and subscription limits to each connection; the
	// connections per host are counted by the callout instead, as the
	// account's own limit would count all hosts together.
	vol := jwt.NewAccountClaims(pub(k.volunteers()))
	vol.Name = "VOLUNTEERS"
	vol.Imports.Add(
		&jwt.Import{Name: "vol", Subject: "vol.>", Account: pub(k.Project), Type: jwt.Service},
		&jwt.Import{Name: "push", Subject: jwt.Subject(wu.PushSubject("*")), Account: pub(k.Project), Type: jwt.Stream},
	)
	vol.Limits.Subs = a.limits.Subscriptions
	vol.Limits.Payload = a.limits.Payload
	vol.Limits.LeafNodeConn = 0
	vol.Limits.Imports = 2
	vol.Limits.Exports = 0
	vol.Limits.DisallowBearer = true

	for _, c := range []struct {
		claims *jwt.AccountClaims
	}{{sys}, {project}, {authAcc}, {attach}, {vol}} {
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

// admit records connection cid of host id on ns, unless the host already
// holds its limit of connections there: then it says so. Connections
// authorised on another server (a callout answering for a server whose own
// is down) are not counted.
func (a *Authority) admit(id, serverID string, cid uint64) string {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.ns == nil || serverID != a.ns.ID() {
		return ""
	}
	open := a.conns[id][:0]
	for _, c := range a.conns[id] {
		if a.ns.GetClient(c) != nil {
			open = append(open, c)
		}
	}
	if int64(len(open)) >= a.limits.Connections {
		a.conns[id] = open
		return fmt.Sprintf("host %s already has %d connections open to this server, its limit", id, len(open))
	}
	a.conns[id] = append(open, cid)
	if a.admits++; a.admits >= sweepEvery {
		a.sweepLocked()
	}
	return ""
}

// sweepEvery is how many connections are admitted between two sweeps of
// the hosts that have none left, so that the count holds only hosts
// connected now at a cost of a lookup per admission.
const sweepEvery = 4096

func (a *Authority) sweepLocked() {
	a.admits = 0
	for id, cs := range a.conns {
		if !slices.ContainsFunc(cs, func(c uint64) bool { return a.ns.GetClient(c) != nil }) {
			delete(a.conns, id)
		}
	}
}

// Block closes host id's connections to this server now. Keeping it out
// afterwards is the callout's business (a revoked or throttled host is
// refused there).
func (a *Authority) Block(id string) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, c := range a.conns[id] {
		if a.ns != nil {
			_ = a.ns.DisconnectClientByID(c) // an error: it had gone already
		}
	}
	delete(a.conns, id)
	return nil
}

// hostUserJWT is the JWT the callout issues for a connection of host id,
// whose server-side user key is userKey.
func (a *Authority) hostUserJWT(id, userKey string) (string, error) {
	uc := jwt.NewUserClaims(userKey)
	uc.Name = "host " + id
	uc.Pub.Allow.Add(wu.VolunteerSubject(id, ">"))
	uc.Sub.Allow.Add(wu.InboxPrefix(id)+".>", wu.PushSubject(id))
	return uc.Encode(a.keys.volunteers())
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

// ProjectAccount is the public key of the project's account, its name on
// the server: a leaf-node server binds it to the core's.
func (a *Authority) ProjectAccount() string { return pub(a.keys.Project) }

// SignAsProject signs a server's nonce as the project's user, for a
// leaf-node connection to the core: the user's JWT and the signature.
func (a *Authority) SignAsProject(nonce []byte) (string, []byte, error) {
	c, err := a.ProjectCreds()
	if err != nil {
		return "", nil, err
	}
	sig, err := a.keys.ProjectUser.Sign(nonce)
	return c.JWT, sig, err
}
