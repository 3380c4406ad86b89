// Package auth is who may do what on the project's NATS server (DESIGN §4),
// with NATS's own mechanisms: an operator, accounts and an auth callout.
//
// The embedded server runs in operator mode with these accounts:
//
//   - PROJECT: the project's own services (gateway, scheduler, validator)
//     and tools. It holds JetStream and exports the volunteer services
//     vol.> and attach.>.
//   - VOLUNTEERS: every attached host's connections, each a user allowed
//     only its own host's subjects. It imports vol.> from PROJECT and nothing
//     else; its payload and subscription limits bind each connection, and
//     the callout counts each host's connections to its server, so a host
//     that opens too many hits its own limit, not its neighbours'.
//   - ATTACH: connections that present an account key, allowed only to
//     attach one host.
//   - AUTH: where every other connection lands first (the default sentinel),
//     to be placed by the callout service; SYS: the system account.
//
// The callout service (Service) answers $SYS.REQ.USER.AUTH: a host proves it
// holds its nkey by signing the server's nonce, the callout looks the key up
// in the scheduler's replicated state and issues a user JWT in VOLUNTEERS
// that may publish only vol.<host>.> and subscribe only _INBOX_<host>.>.
// Revoking or throttling a host closes its connections (the callout knows
// their ids on its server) and refuses new ones.
//
// One account for all hosts rather than one each: an account costs a NATS
// server tens of kilobytes and its resolver an entry, which at 10^5–10^6
// attached hosts is most of a server's memory, while what isolates a host
// from the others is its user's permissions, which stay per connection.
//
// Volunteers never reach JetStream, other hosts' subjects or the project's:
// the gateway in PROJECT serves them across the account boundary, and NATS
// routes each reply back into the requesting host's inbox.
package auth

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/nats-io/nkeys"

	"github.com/momonga-project/momonga/internal/atomicfile"
)

// KeysFile is where a project's NATS keys live in its data directory.
const KeysFile = "nats-keys.json"

// Keys are the project's NATS identities: seeds, so keep them private (the
// file is 0600). The volunteers' account key is derived from HostSecret.
type Keys struct {
	Operator    nkeys.KeyPair
	System      nkeys.KeyPair
	Project     nkeys.KeyPair
	Auth        nkeys.KeyPair
	Attach      nkeys.KeyPair
	ProjectUser nkeys.KeyPair // the project's services and tools
	CalloutUser nkeys.KeyPair // the callout service, in AUTH
	HostSecret  []byte
}

type keysFile struct {
	Operator    string `json:"operator"`
	System      string `json:"system"`
	Project     string `json:"project"`
	Auth        string `json:"auth"`
	Attach      string `json:"attach"`
	ProjectUser string `json:"project_user"`
	CalloutUser string `json:"callout_user"`
	HostSecret  []byte `json:"host_secret"`
}

// LoadOrCreateKeys reads dir/KeysFile, creating it with new keys when there
// is none.
func LoadOrCreateKeys(dir string) (*Keys, error) {
	p := filepath.Join(dir, KeysFile)
	b, err := os.ReadFile(p)
	if errors.Is(err, os.ErrNotExist) {
		k, err := NewKeys()
		if err != nil {
			return nil, err
		}
		return k, k.save(p)
	}
	if err != nil {
		return nil, fmt.Errorf("read NATS keys: %w", err)
	}
	var f keysFile
	if err := json.Unmarshal(b, &f); err != nil {
		return nil, fmt.Errorf("%s is corrupt: %w", p, err)
	}
	k := &Keys{HostSecret: f.HostSecret}
	for _, s := range []struct {
		seed string
		kp   *nkeys.KeyPair
	}{{f.Operator, &k.Operator}, {f.System, &k.System}, {f.Project, &k.Project}, {f.Auth, &k.Auth}, {f.Attach, &k.Attach},
		{f.ProjectUser, &k.ProjectUser}, {f.CalloutUser, &k.CalloutUser}} {
		if *s.kp, err = nkeys.FromSeed([]byte(s.seed)); err != nil {
			return nil, fmt.Errorf("%s: a key is corrupt: %w", p, err)
		}
	}
	if len(k.HostSecret) != 32 {
		return nil, fmt.Errorf("%s: host secret is not 32 bytes", p)
	}
	return k, nil
}

// NewKeys makes a fresh set of keys.
func NewKeys() (*Keys, error) {
	k := &Keys{HostSecret: make([]byte, 32)}
	if _, err := rand.Read(k.HostSecret); err != nil {
		return nil, err
	}
	var err error
	for _, s := range []struct {
		make func() (nkeys.KeyPair, error)
		kp   *nkeys.KeyPair
	}{{nkeys.CreateOperator, &k.Operator}, {nkeys.CreateAccount, &k.System}, {nkeys.CreateAccount, &k.Project},
		{nkeys.CreateAccount, &k.Auth}, {nkeys.CreateAccount, &k.Attach}, {nkeys.CreateUser, &k.ProjectUser}, {nkeys.CreateUser, &k.CalloutUser}} {
		if *s.kp, err = s.make(); err != nil {
			return nil, fmt.Errorf("make NATS key: %w", err)
		}
	}
	return k, nil
}

func (k *Keys) save(p string) error {
	seed := func(kp nkeys.KeyPair) string { s, _ := kp.Seed(); return string(s) }
	b, err := json.Marshal(keysFile{
		Operator: seed(k.Operator), System: seed(k.System), Project: seed(k.Project), Auth: seed(k.Auth), Attach: seed(k.Attach),
		ProjectUser: seed(k.ProjectUser), CalloutUser: seed(k.CalloutUser), HostSecret: k.HostSecret,
	})
	if err != nil {
		return err
	}
	return writePrivate(p, b)
}

// volunteers is the key of the account every host's users are in. It is
// derived from HostSecret, so keys files written before there was one
// need no new entry.
func (k *Keys) volunteers() nkeys.KeyPair {
	mac := hmac.New(sha256.New, k.HostSecret)
	mac.Write([]byte("momonga volunteers account"))
	kp, err := nkeys.FromRawSeed(nkeys.PrefixByteAccount, mac.Sum(nil))
	if err != nil {
		panic("auth: derive the volunteers' account key: " + err.Error()) // 32 bytes always make a seed
	}
	return kp
}

func pub(kp nkeys.KeyPair) string {
	p, err := kp.PublicKey()
	if err != nil {
		panic("auth: public key: " + err.Error())
	}
	return p
}

// writePrivate writes a file only its owner may read, atomically.
func writePrivate(p string, b []byte) error { return atomicfile.Write(p, b, 0o600) }

// routePassword is what the servers of a cluster that share these keys
// present to each other's route listeners.
func (k *Keys) routePassword() string {
	mac := hmac.New(sha256.New, k.HostSecret)
	mac.Write([]byte("momonga cluster routes"))
	return hex.EncodeToString(mac.Sum(nil))
}
