package workunits

import (
	"strings"
	"unicode"
	"unicode/utf8"
)

// A user's settings (DESIGN §9): the team, the country shown on the stats
// site and in its exports, and whether the user appears in the exports at
// all. The project's tools change them (user.set, naming the user), and so
// does the user from any of their hosts (vol.H.account, `momonga team
// join`), which names no user: the host's own is meant.

// UserSet changes what it names of a user's settings; a nil field stays as
// it is.
type UserSet struct {
	V    int    `json:"v"`
	User string `json:"user,omitempty"` // by name; "" from a volunteer's host
	// Team is a team to join, by name; "" leaves any.
	Team    *string `json:"team,omitempty"`
	Country *string `json:"country,omitempty"`
	// StatsExport false leaves the user and their hosts out of the
	// statistics exports (user.gz, host.gz); true puts them back.
	StatsExport *bool `json:"stats_export,omitempty"`
}

// Bounds of what users and teams say of themselves.
const (
	MaxCountryBytes     = 64
	MaxURLBytes         = 256
	MaxDescriptionBytes = 4096
	MaxTeamType         = 12
)

func (m *UserSet) Validate() error {
	if m.User != "" && !ValidName(m.User) {
		return Errorf(CodeBadRequest, "user name %q is malformed", m.User)
	}
	if m.Team == nil && m.Country == nil && m.StatsExport == nil {
		return Errorf(CodeBadRequest, "nothing to change: name a team, a country or the export setting")
	}
	if m.Team != nil && *m.Team != "" && !ValidName(*m.Team) {
		return Errorf(CodeBadRequest, "team name %q is malformed", *m.Team)
	}
	if m.Country != nil && !ValidText(*m.Country, MaxCountryBytes, false) {
		return Errorf(CodeBadRequest, "country: up to %d bytes of text", MaxCountryBytes)
	}
	return nil
}

// ValidText reports whether s is valid UTF-8 of at most max bytes with no
// control characters (but newlines and tabs where multiline).
func ValidText(s string, max int, multiline bool) bool {
	if len(s) > max || !utf8.ValidString(s) {
		return false
	}
	for _, r := range s {
		if unicode.IsControl(r) && !(multiline && (r == '\n' || r == '\t' || r == '\r')) {
			return false
		}
	}
	return true
}

// ValidURL reports whether s is an http or https address that a page may
// link to.
func ValidURL(s string) bool {
	rest, ok := strings.CutPrefix(s, "https://")
	if !ok {
		rest, ok = strings.CutPrefix(s, "http://")
	}
	return ok && rest != "" && len(s) <= MaxURLBytes && ValidText(s, MaxURLBytes, false) && !strings.ContainsAny(s, " \\"+"\"'<>`")
}

func isHex(s string, max int) bool {
	if s == "" || len(s) > max {
		return false
	}
	for _, c := range s {
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F') {
			return false
		}
	}
	return true
}

// SubjectAdminExport asks the project for its statistics exports now
// (`momonga-project export`): the server writes them into the blob store
// and answers an ExportReply naming them.
const SubjectAdminExport = "adm.export"

// ExportReply names the files of an export, each a blob.
type ExportReply struct {
	V     int          `json:"v"`
	Error *Error       `json:"error,omitempty"`
	Files []ExportFile `json:"files,omitempty"`
}

// ExportFile is one file of an export.
type ExportFile struct {
	Name string `json:"name"`
	Hash Hash   `json:"hash"`
	Size int64  `json:"size"`
}
