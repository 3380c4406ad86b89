package daemon

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nkeys"

	"github.com/momonga-project/momonga/internal/atomicfile"
	wu "github.com/momonga-project/momonga/workunits"
)

// A host's trust in its project, and the project's in it (DESIGN §4, §6),
// as files in the data directory:
//
//	host.nk       the host's nkey seed (0600): it signs the server's nonce
//	              each time the host connects; only its public half leaves
//	              the machine, at attach
//	project.json  the attachment: the project's URL and name, the host id it
//	              gave, the user, and the key the project signs apps with,
//	              pinned: a module not signed with it is never run
//	ca.pem        the certificate authority of the project's TLS listener,
//	              when it was given at attach
//
// Those are the first project's. A host attached to several keeps the
// others' attachments, and TLS authorities, under attachments/, by a hash
// of their URL; one nkey serves them all.

// Files of the attachment in the data directory.
const (
	seedFile       = "host.nk"
	attachmentFile = "project.json"
	caFile         = "ca.pem"
	attachmentsDir = "attachments"
)

// Attachment is what a host knows of the project it computes for.
type Attachment struct {
	URL        string `json:"url"`
	Project    string `json:"project"`
	Host       string `json:"host"`
	User       string `json:"user,omitempty"`
	SigningKey string `json:"signing_key,omitempty"` // pinned: workunits.FormatPublicKey
	// Credentials is true when the project gave this host an identity of
	// its own (host.nk); false for an open project, where the host named
	// itself.
	Credentials bool `json:"credentials"`
	CA          bool `json:"ca,omitempty"` // ca.pem holds the project's TLS authority
}

// AttachConfig says what to attach to.
type AttachConfig struct {
	DataDir    string
	URL        string // the project's NATS URL
	AccountKey string // the user's account key
	Name       string // host name shown by the project; default the machine's
	CAFile     string // PEM file of the TLS authority to trust, if not the system's
	CA         []byte // or the authority itself, PEM
	Timeout    time.Duration
}

// Attach registers this host with a project for the user whose account key
// is given, and keeps what it needs to connect later in the data directory.
// Attaching again with the same data directory gives the same host.
func Attach(ctx context.Context, cfg AttachConfig) (Attachment, error) {
	if cfg.Timeout <= 0 {
		cfg.Timeout = 15 * time.Second
	}
	if !wu.ValidAccountKey(cfg.AccountKey) {
		return Attachment{}, errors.New("the account key is malformed: copy it whole from the project's welcome message")
	}
	if err := checkOwner(cfg.DataDir); err != nil {
		return Attachment{}, err
	}
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return Attachment{}, fmt.Errorf("data directory: %w", err)
	}
	kp, err := loadOrCreateSeed(cfg.DataDir)
	if err != nil {
		return Attachment{}, err
	}
	pub, _ := kp.PublicKey()
	caPath := ""
	if cfg.CAFile != "" || len(cfg.CA) > 0 {
		pem := cfg.CA
		if len(pem) == 0 {
			if pem, err = os.ReadFile(cfg.CAFile); err != nil {
				return Attachment{}, fmt.Errorf("CA file: %w", err)
			}
		}
		caPath = caPathFor(cfg.DataDir, cfg.URL)
		if err := os.MkdirAll(filepath.Dir(caPath), 0o700); err != nil {
			return Attachment{}, err
		}
		if err := atomicfile.Write(caPath, pem, 0o600); err != nil {
			return Attachment{}, err
		}
	}
	opts := []nats.Option{
		nats.Name("momonga attach"),
		nats.UserInfo(wu.AttachUserName(pub), cfg.AccountKey),
		nats.CustomInboxPrefix(wu.InboxPrefix(pub)),
		nats.Timeout(cfg.Timeout),
		nats.NoReconnect(),
	}
	if caPath != "" {
		opts = append(opts, nats.RootCAs(caPath))
	}
	nc, err := nats.Connect(cfg.URL, opts...)
	if errors.Is(err, nats.ErrAuthorization) {
		return Attachment{}, fmt.Errorf("the project at %s refused the account key: check it, or ask the project for one", cfg.URL)
	}
	if err != nil {
		return Attachment{}, fmt.Errorf("connect to project %s: %w", cfg.URL, err)
	}
	defer nc.Close()
	name := cfg.Name
	if name == "" {
		name, _ = os.Hostname()
	}
	info := wu.HostInfo{Name: name, OS: runtime.GOOS, Arch: runtime.GOARCH, CPUs: runtime.NumCPU()}
	actx, cancel := context.WithTimeout(ctx, cfg.Timeout)
	defer cancel()
	msg, err := nc.RequestWithContext(actx, wu.AttachSubject(pub), wu.Encode(wu.AttachRequest{V: wu.WireVersion, AccountKey: cfg.AccountKey, NKey: pub, Host: info}))
	if err != nil {
		return Attachment{}, fmt.Errorf("attach: no answer from the project: %w", err)
	}
	var rep wu.AttachReply
	if err := decodeReply(msg.Data, &rep); err != nil {
		return Attachment{}, fmt.Errorf("attach: %w", err)
	}
	if !wu.ValidHostID(rep.Host) {
		return Attachment{}, fmt.Errorf("attach: the project answered a malformed host id %q", rep.Host)
	}
	if rep.SigningKey != "" {
		if _, err := wu.ParsePublicKey(rep.SigningKey); err != nil {
			return Attachment{}, fmt.Errorf("attach: the project's signing key: %w", err)
		}
	}
	a := Attachment{URL: cfg.URL, Project: rep.Project, Host: rep.Host, User: rep.User, SigningKey: rep.SigningKey, Credentials: true, CA: caPath != ""}
	// The first project's host id names the host to open projects too;
	// other projects' ids stay in their attachments.
	idPath := filepath.Join(cfg.DataDir, "host.json")
	if _, err := os.Stat(idPath); errors.Is(err, os.ErrNotExist) {
		if err := atomicfile.Write(idPath, wu.Encode(identity{ID: rep.Host, Name: name}), 0o600); err != nil {
			return a, err
		}
	}
	return a, saveAttachment(cfg.DataDir, a)
}

// LoadAttachment reads the first project's attachment in a data directory;
// ok is false when the host never attached.
func LoadAttachment(dir string) (a Attachment, ok bool, err error) {
	return readAttachment(filepath.Join(dir, attachmentFile))
}

func readAttachment(p string) (a Attachment, ok bool, err error) {
	b, err := os.ReadFile(p)
	if errors.Is(err, os.ErrNotExist) {
		return a, false, nil
	}
	if err != nil {
		return a, false, err
	}
	if err := json.Unmarshal(b, &a); err != nil {
		return a, false, fmt.Errorf("%s is corrupt (%v): attach again", p, err)
	}
	return a, true, nil
}

// attachmentPath is where the attachment to the project at url lives: the
// first one attached in project.json, the others under attachments/.
func attachmentPath(dir, url string) string {
	if first, ok, _ := LoadAttachment(dir); !ok || first.URL == url {
		return filepath.Join(dir, attachmentFile)
	}
	return filepath.Join(dir, attachmentsDir, projectKey(url)+".json")
}

func caPathFor(dir, url string) string {
	if attachmentPath(dir, url) == filepath.Join(dir, attachmentFile) {
		return filepath.Join(dir, caFile)
	}
	return filepath.Join(dir, attachmentsDir, projectKey(url)+".ca.pem")
}

// loadAttachmentFor reads the attachment to the project at url; a project
// never attached (an open one) has none yet.
func loadAttachmentFor(dir, url string) (Attachment, bool, error) {
	return readAttachment(attachmentPath(dir, url))
}

// allAttachments reads every attachment in the data directory.
func allAttachments(dir string) ([]Attachment, error) {
	paths, _ := filepath.Glob(filepath.Join(dir, attachmentsDir, "*.json"))
	paths = append([]string{filepath.Join(dir, attachmentFile)}, paths...)
	var out []Attachment
	for _, p := range paths {
		a, ok, err := readAttachment(p)
		if err != nil {
			return nil, err
		}
		if ok {
			out = append(out, a)
		}
	}
	return out, nil
}

func saveAttachment(dir string, a Attachment) error {
	p := attachmentPath(dir, a.URL)
	if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
		return err
	}
	b, _ := json.MarshalIndent(a, "", "  ")
	return atomicfile.Write(p, append(b, '\n'), 0o600)
}

// removeAttachment forgets the attachment to a project left (the host's
// nkey stays: other projects know it).
func removeAttachment(dir, url string) {
	p := attachmentPath(dir, url)
	if a, ok, _ := readAttachment(p); ok && a.URL == url {
		os.Remove(p)
		if a.CA {
			os.Remove(caPathFor(dir, url))
		}
	}
}

// loadAttachments attaches the daemon to every project the host was
// attached to with `momonga attach`, as the state file may not know them
// yet.
func (d *Daemon) loadAttachments() error {
	as, err := allAttachments(d.cfg.DataDir)
	if err != nil {
		return err
	}
	for _, a := range as {
		if d.projects[a.URL] == nil && checkProjectURL(a.URL) == nil {
			d.projects[a.URL] = newProject(a.URL, DefaultShare)
			d.dirty = true
		}
	}
	return nil
}

// loadOrCreateSeed reads the host's nkey, making one on first use. The
// seed file is the host's password: only its owner may read it.
func loadOrCreateSeed(dir string) (nkeys.KeyPair, error) {
	p := filepath.Join(dir, seedFile)
	b, err := os.ReadFile(p)
	if err == nil {
		kp, err := nkeys.FromSeed(b)
		if err != nil {
			return nil, fmt.Errorf("%s is corrupt: remove it and attach again", p)
		}
		return kp, nil
	}
	if !errors.Is(err, os.ErrNotExist) {
		return nil, err
	}
	kp, err := nkeys.CreateUser()
	if err != nil {
		return nil, err
	}
	seed, _ := kp.Seed()
	f, err := os.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return nil, err
	}
	if _, err := f.Write(seed); err != nil {
		f.Close()
		return nil, err
	}
	return kp, f.Close()
}

// attachment is what the host knows of the project at url: its attachment,
// or for an open project never met, the host's own id.
func (d *Daemon) attachment(url string) (Attachment, error) {
	a, ok, err := loadAttachmentFor(d.cfg.DataDir, url)
	if err != nil {
		return a, err
	}
	if !ok || a.URL != url {
		a = Attachment{URL: url}
	}
	if a.Host == "" {
		a.Host = d.id.ID
	}
	return a, nil
}

// connectOptions are the options that identify the host to a project: its
// nkey when it attached, the TLS authority it was given.
func (d *Daemon) connectOptions(att Attachment) ([]nats.Option, error) {
	var opts []nats.Option
	if att.Credentials {
		kp, err := loadOrCreateSeed(d.cfg.DataDir)
		if err != nil {
			return nil, err
		}
		pub, _ := kp.PublicKey()
		opts = append(opts, nats.Nkey(pub, kp.Sign))
	}
	ca := ""
	if att.URL == d.cfg.Project {
		ca = d.cfg.CAFile
	}
	if ca == "" && att.CA {
		ca = caPathFor(d.cfg.DataDir, att.URL)
	}
	if ca != "" {
		opts = append(opts, nats.RootCAs(ca))
	}
	return opts, nil
}

// pin checks the project's signing key from its hello against the one
// pinned at attach, pinning it on first use for an open project. A project
// met first at another address (the same name) keeps the key pinned there.
// It returns the attachment with the key pinned.
func (d *Daemon) pin(att Attachment, name, key string) (Attachment, error) {
	pinned := att.SigningKey
	if pinned == "" && name != "" {
		others, err := allAttachments(d.cfg.DataDir)
		if err != nil {
			return att, err
		}
		for _, o := range others {
			if o.Project == name && o.URL != att.URL && o.SigningKey != "" {
				pinned = o.SigningKey
			}
		}
	}
	switch {
	case key == "":
		return att, errors.New("the project signs no apps (it has no signing key): refusing to compute for it")
	case pinned != "" && pinned != key:
		return att, fmt.Errorf("the project's signing key is now %s, not %s as pinned when this host attached: refusing its apps (if the project really changed its key, attach again)", key, pinned)
	case att.SigningKey == "":
		if _, err := wu.ParsePublicKey(key); err != nil {
			return att, fmt.Errorf("the project's signing key: %w", err)
		}
		att.SigningKey = key
		if att.Project == "" {
			att.Project = name
		}
		return att, saveAttachment(d.cfg.DataDir, att)
	}
	return att, nil
}

// verifyModule refuses a module that is not signed with the project's
// pinned key, or that is not the module signed.
func verifyModule(att Attachment, a wu.Assignment, module []byte) error {
	key, err := wu.ParsePublicKey(att.SigningKey)
	if err != nil {
		return fmt.Errorf("no pinned signing key: %w", err)
	}
	if err := wu.VerifyApp(key, module, []byte(a.AppSig)); err != nil {
		var e *wu.Error
		if errors.As(err, &e) {
			err = errors.New(e.Message)
		}
		return fmt.Errorf("refusing to run app %s (sha256 %s): %w", a.App, a.AppHash.Short(), err)
	}
	return nil
}
