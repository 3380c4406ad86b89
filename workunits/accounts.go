package workunits

import (
	"strings"
	"time"
)

// Accounts (DESIGN §4, §9): a user holds an account key and owns hosts; a
// user may belong to one team. A volunteer attaches a host to a user with the
// account key; the project then knows the host by the nkey it generated and
// gives it credentials of its own.

// Operations on accounts, and the validator's verdicts, as carried in
// Command.Op.
const (
	OpAttach     = "attach"      // the gateway: a host joins a user's account
	OpUserAdd    = "user.add"    // admin
	OpTeamAdd    = "team.add"    // admin
	OpTeamJoin   = "team.join"   // admin
	OpHostRevoke = "host.revoke" // admin
	OpUserSet    = "user.set"    // admin: a user's settings (UserSet)
	OpAccount    = "account"     // a volunteer: its user's settings (vol.H.account, UserSet)
	OpCompare    = "compare"     // the validator: do two outputs of a unit agree?
)

// HostCredential is what the project's NATS authorisation needs to know of
// a host: who it is, whose it is, and whether it may still connect.
type HostCredential struct {
	ID      string
	User    string
	Revoked bool
}

// CodeForbidden refuses a request its sender may not make: an unknown
// account key, a revoked host.
const CodeForbidden = "forbidden"

// Subjects of attaching and of the accounts query.
const (
	// SubjectAttachPrefix + nkey is where a host attaches: an AttachRequest
	// → AttachReply. Only a connection that presented a valid account key
	// may publish there, and only under its own nkey.
	SubjectAttachPrefix = "attach."
	// SubjectAdminAccounts answers an AccountsReply (users with their
	// e-mail addresses, teams); project tools only.
	SubjectAdminAccounts = "adm.accounts"
	// AttachUser starts the NATS user name of a connection that attaches
	// (AttachUserName); its password is the account key.
	AttachUser = "momonga-attach"
)

// AttachUserName is the NATS user name of a connection that attaches the
// host with public key nkey.
func AttachUserName(nkey string) string { return AttachUser + "/" + nkey }

// AttachSubject is where the host with this nkey attaches.
func AttachSubject(nkey string) string { return SubjectAttachPrefix + nkey }

// PushSubject is where the project tells host id that work waits for it (a
// push, to an idle host). A secured project's volunteers' account imports
// it from the project's, and each host's user may subscribe to its own, as
// to its inbox.
func PushSubject(id string) string { return "push." + id }

// InboxPrefix is the prefix of the reply subjects a host (by id, or by nkey
// while it attaches) may receive on, the only ones it may subscribe to.
func InboxPrefix(id string) string { return "_INBOX_" + id }

// AttachRequest is what a volunteer sends to attach: the account key of the
// user it computes for and the public nkey it will authenticate with.
type AttachRequest struct {
	V          int      `json:"v"`
	AccountKey string   `json:"account_key"`
	NKey       string   `json:"nkey"`
	Host       HostInfo `json:"host"`
}

// Attach is the log record of an AttachRequest: the gateway replaces the key
// by its hash, so that no account key is ever written to the log.
type Attach struct {
	V       int      `json:"v"`
	KeyHash Hash     `json:"key_hash"`
	NKey    string   `json:"nkey"`
	Host    HostInfo `json:"host"`
}

// AttachReply gives the host its id and what it must pin: the project's
// name and the public key its apps are signed with.
type AttachReply struct {
	V          int    `json:"v"`
	Error      *Error `json:"error,omitempty"`
	Host       string `json:"host,omitempty"`
	User       string `json:"user,omitempty"` // the user's name
	Project    string `json:"project,omitempty"`
	SigningKey string `json:"signing_key,omitempty"` // FormatPublicKey of the project's key
}

// UserAdd creates a user. The account key itself stays with the tool that
// made it up: only its hash reaches the project.
type UserAdd struct {
	V       int    `json:"v"`
	Name    string `json:"name"`
	Email   string `json:"email,omitempty"`
	KeyHash Hash   `json:"key_hash"`
	Team    string `json:"team,omitempty"` // a team to join at once, by name
	// CrossProjectID is the user's random cross-project id (32 hex
	// digits), drawn by the tool that makes the user: the statistics
	// exports give md5(id + e-mail address) as BOINC's cpid. A user made
	// without one gets one derived from the key hash.
	CrossProjectID string `json:"cross_project_id,omitempty"`
	Country        string `json:"country,omitempty"`
}

// TeamAdd creates a team, founded by an existing user (by name) or by
// nobody.
type TeamAdd struct {
	V       int    `json:"v"`
	Name    string `json:"name"`
	Founder string `json:"founder,omitempty"`
	// What BOINC's team.gz tells of a team besides its name.
	Type        int    `json:"type,omitempty"` // BOINC's team types, 1 to 12; 0 is 1, "none"
	Country     string `json:"country,omitempty"`
	URL         string `json:"url,omitempty"` // http or https
	Description string `json:"description,omitempty"`
}

// TeamJoin moves a user into a team, or out of any with Team "". Credit
// earned so far stays where it was earned.
type TeamJoin struct {
	V    int    `json:"v"`
	User string `json:"user"`
	Team string `json:"team,omitempty"`
}

// HostRevoke withdraws a host's credentials for good: its connections are
// closed, it may not connect again and its tasks go to other hosts.
type HostRevoke struct {
	V    int    `json:"v"`
	Host string `json:"host"`
}

// Compare is the validator's verdict on two distinct outputs of a work unit
// whose app compares with a tolerance.
type Compare struct {
	V     int    `json:"v"`
	Unit  string `json:"unit"`
	A     Hash   `json:"a"`
	B     Hash   `json:"b"`
	Agree bool   `json:"agree"`
}

// CreatedReply names what a command created.
type CreatedReply struct {
	V     int    `json:"v"`
	Error *Error `json:"error,omitempty"`
	ID    string `json:"id,omitempty"`
}

// UserStatus is one user and the credit of its hosts. Email is filled only
// for the project's own tools, never on the public stats page.
type UserStatus struct {
	ID      string    `json:"id"`
	Name    string    `json:"name"`
	Email   string    `json:"email,omitempty"`
	Team    string    `json:"team,omitempty"` // team name
	Created time.Time `json:"created"`
	Hosts   int       `json:"hosts"`
	Credit  float64   `json:"credit"` // total granted, Cobblestones
	RAC     float64   `json:"rac"`    // recent average credit, Cobblestones per day
}

// TeamStatus is one team and its members' credit earned in it.
type TeamStatus struct {
	ID      string    `json:"id"`
	Name    string    `json:"name"`
	Founder string    `json:"founder,omitempty"` // user name
	Created time.Time `json:"created"`
	Members int       `json:"members"`
	Credit  float64   `json:"credit"`
	RAC     float64   `json:"rac"`
}

// AccountsReply lists users and teams for the project's tools.
type AccountsReply struct {
	V     int          `json:"v"`
	Error *Error       `json:"error,omitempty"`
	Users []UserStatus `json:"users"`
	Teams []TeamStatus `json:"teams"`
}

// AccountKeyHash is what the project keeps of an account key.
func AccountKeyHash(key string) Hash { return HashOf([]byte("momonga account key\x00" + key)) }

// ValidAccountKey reports whether s has the form of an account key: 16 to
// 128 letters, digits, '-' or '_'.
func ValidAccountKey(s string) bool {
	if len(s) < 16 || len(s) > 128 {
		return false
	}
	for _, c := range s {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}

// ValidNKey reports whether s has the form of a NATS user public key
// ("U" and 55 more base-32 characters). Its checksum is checked where the
// nkeys library is at hand.
func ValidNKey(s string) bool {
	if len(s) != 56 || s[0] != 'U' {
		return false
	}
	for _, c := range s {
		if !(c >= 'A' && c <= 'Z' || c >= '2' && c <= '7') {
			return false
		}
	}
	return true
}

func validEmail(s string) bool {
	return s == "" || len(s) <= 254 && strings.Count(s, "@") == 1 && !strings.ContainsAny(s, " \t\r\n<>\"") && s[0] != '@' && s[len(s)-1] != '@'
}

func (m *AttachRequest) Validate() error {
	if !ValidAccountKey(m.AccountKey) {
		return Errorf(CodeBadRequest, "account key is malformed: copy it whole from the project's welcome message")
	}
	if !ValidNKey(m.NKey) {
		return Errorf(CodeBadRequest, "nkey %.12q is not a NATS user public key", m.NKey)
	}
	h := Hello{Host: m.Host}
	return h.Validate()
}

func (m *Attach) Validate() error {
	if !m.KeyHash.Valid() || !ValidNKey(m.NKey) {
		return Errorf(CodeBadRequest, "attach record without a key hash or an nkey")
	}
	h := Hello{Host: m.Host}
	return h.Validate()
}

func (m *UserAdd) Validate() error {
	if !ValidName(m.Name) {
		return Errorf(CodeBadRequest, "user name %q: use 1-%d letters, digits, '.', '_' or '-'", m.Name, MaxNameBytes)
	}
	if !validEmail(m.Email) {
		return Errorf(CodeBadRequest, "e-mail address %q is malformed", m.Email)
	}
	if !m.KeyHash.Valid() {
		return Errorf(CodeBadRequest, "user without an account key hash")
	}
	if m.Team != "" && !ValidName(m.Team) {
		return Errorf(CodeBadRequest, "team name %q is malformed", m.Team)
	}
	if m.CrossProjectID != "" && (len(m.CrossProjectID) != 32 || !isHex(m.CrossProjectID, 32)) {
		return Errorf(CodeBadRequest, "cross-project id: 32 hex digits")
	}
	if !ValidText(m.Country, MaxCountryBytes, false) {
		return Errorf(CodeBadRequest, "country: up to %d bytes of text", MaxCountryBytes)
	}
	return nil
}

func (m *TeamAdd) Validate() error {
	if !ValidName(m.Name) {
		return Errorf(CodeBadRequest, "team name %q: use 1-%d letters, digits, '.', '_' or '-'", m.Name, MaxNameBytes)
	}
	if m.Founder != "" && !ValidName(m.Founder) {
		return Errorf(CodeBadRequest, "founder %q is malformed", m.Founder)
	}
	if m.Type < 0 || m.Type > MaxTeamType {
		return Errorf(CodeBadRequest, "team type %d: use 1 to %d", m.Type, MaxTeamType)
	}
	if !ValidText(m.Country, MaxCountryBytes, false) {
		return Errorf(CodeBadRequest, "country: up to %d bytes of text", MaxCountryBytes)
	}
	if m.URL != "" && !ValidURL(m.URL) {
		return Errorf(CodeBadRequest, "team URL %.40q: an http:// or https:// address of up to %d bytes", m.URL, MaxURLBytes)
	}
	if !ValidText(m.Description, MaxDescriptionBytes, true) {
		return Errorf(CodeBadRequest, "description: up to %d bytes of text", MaxDescriptionBytes)
	}
	return nil
}

func (m *TeamJoin) Validate() error {
	if !ValidName(m.User) || m.Team != "" && !ValidName(m.Team) {
		return Errorf(CodeBadRequest, "user %q or team %q is malformed", m.User, m.Team)
	}
	return nil
}

func (m *HostRevoke) Validate() error {
	if !ValidHostID(m.Host) {
		return Errorf(CodeBadRequest, "host id %q is malformed", m.Host)
	}
	return nil
}

func (m *Compare) Validate() error {
	if m.Unit == "" || len(m.Unit) > MaxNameBytes || !m.A.Valid() || !m.B.Valid() || m.A == m.B {
		return Errorf(CodeBadRequest, "comparison needs a unit and two distinct output hashes")
	}
	return nil
}
