package boinc

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"

	wu "github.com/momonga-project/momonga/workunits"
)

// Accounts as the BOINC Manager's attach wizard and boinccmd see them
// (client/acct_setup.cpp): get_project_config.php, lookup_account.php and
// create_account.php, answered with BOINC's account_out or error elements.
//
// momonga keeps no password, only the hash of each account key. The key of
// an account made here is derived from the secret, the e-mail address and
// the password hash BOINC sends (md5 of the password and the lower-case
// address), so that a look-up with the same address and password finds it
// again. Users made with `momonga-project user add` attach with their
// account key: `boinccmd --project_attach URL KEY`.

// BOINC's error numbers (lib/error_numbers.h).
const (
	errDBNotFound       = -136
	errDBNotUnique      = -137
	errBadUserName      = -188
	errBadEmailAddr     = -205
	errBadPasswd        = -206
	errCreationDisabled = -208
	errProjectDown      = -183
)

// minPasswordLength is what the wizard asks of a new password.
const minPasswordLength = 6

func writeAccountError(w http.ResponseWriter, num int, msg string) {
	var x xmlWriter
	x.open("error")
	x.int("error_num", int64(num))
	x.str("error_msg", msg)
	x.close("error")
	w.Header().Set("Content-Type", "text/xml")
	_, _ = w.Write(x.b.Bytes())
}

func writeAuthenticator(w http.ResponseWriter, key string) {
	var x xmlWriter
	x.open("account_out")
	x.str("authenticator", key)
	x.close("account_out")
	w.Header().Set("Content-Type", "text/xml")
	_, _ = w.Write(x.b.Bytes())
}

// derivedKey is the account key of the account with this address and
// password hash, if it was made here.
func (s *Server) derivedKey(email, passwdHash string) string {
	return hex.EncodeToString(s.mac("boinc account", strings.ToLower(strings.TrimSpace(email)), strings.ToLower(passwdHash)))
}

// validPasswdHash admits an md5 in hex.
func validPasswdHash(h string) bool {
	if len(h) != 32 {
		return false
	}
	_, err := hex.DecodeString(h)
	return err == nil
}

// lookupAccount answers the authenticator of the account with an e-mail
// address and password.
func (s *Server) lookupAccount(w http.ResponseWriter, r *http.Request) {
	email, hash := r.FormValue("email_addr"), r.FormValue("passwd_hash")
	if email == "" || !validPasswdHash(hash) {
		writeAccountError(w, errBadPasswd, "give an e-mail address and a password")
		return
	}
	_, taken, done := s.accountOf(w, strings.TrimSpace(email), hash)
	switch {
	case done:
	case taken:
		writeAccountError(w, errBadPasswd, "wrong password, or an account made by the project: attach with its account key (boinccmd --project_attach "+s.cfg.URL+" KEY)")
	default:
		writeAccountError(w, errDBNotFound, "no account with that e-mail address")
	}
}

// accountOf looks up the account an e-mail address and password hash
// make. It answers the request itself, and reports done, when that account
// exists (with its authenticator) or the project cannot say (with an
// error); otherwise it returns the key such an account would have, and
// whether another account has the address.
func (s *Server) accountOf(w http.ResponseWriter, email, hash string) (key string, taken, done bool) {
	key = s.derivedKey(email, hash)
	if _, ok := s.cfg.Directory.UserByKeyHash(wu.AccountKeyHash(key)); ok {
		writeAuthenticator(w, key)
		return key, false, true
	}
	acc := s.cfg.Directory.Accounts()
	if acc.Error != nil {
		writeAccountError(w, errProjectDown, acc.Error.Message)
		return key, false, true
	}
	taken = slices.ContainsFunc(acc.Users, func(u wu.UserStatus) bool { return strings.EqualFold(u.Email, email) })
	return key, taken, false
}

// createAccount makes a user with an e-mail address, password and name.
func (s *Server) createAccount(w http.ResponseWriter, r *http.Request) {
	if !s.cfg.AllowAccountCreation {
		writeAccountError(w, errCreationDisabled, "this project makes accounts itself: ask it for an account key")
		return
	}
	email, hash := strings.TrimSpace(r.FormValue("email_addr")), r.FormValue("passwd_hash")
	if !validPasswdHash(hash) {
		writeAccountError(w, errBadPasswd, "the password hash is malformed")
		return
	}
	key, taken, done := s.accountOf(w, email, hash)
	if done {
		return
	}
	if taken {
		writeAccountError(w, errDBNotUnique, "there is already an account with that e-mail address")
		return
	}
	name := userName(r.FormValue("user_name"), email)
	if name == "" {
		writeAccountError(w, errBadUserName, "give a user name of letters and digits")
		return
	}
	err := s.addUser(r.Context(), name, email, key, strings.TrimSpace(r.FormValue("team_name")))
	var e *wu.Error
	switch {
	case err == nil:
		writeAuthenticator(w, key)
	case errors.As(err, &e) && e.Code == wu.CodeBadRequest && strings.Contains(e.Message, "e-mail"):
		writeAccountError(w, errBadEmailAddr, e.Message)
	case errors.As(err, &e) && e.Code != wu.CodeInternal:
		writeAccountError(w, errBadUserName, e.Message)
	default:
		s.cfg.Logger.Warn("BOINC account not created", "err", err)
		writeAccountError(w, errProjectDown, "the project could not make the account now; try again later")
	}
}

// addUser makes the user, under its name or, when another user has it, the
// name with a number; in the team if there is one of that name.
func (s *Server) addUser(ctx context.Context, name, email, key, team string) error {
	if !wu.ValidName(team) {
		team = ""
	}
	for i := 1; i <= 20; i++ {
		n := name
		if i > 1 {
			n = fmt.Sprintf("%s-%d", name[:min(len(name), wu.MaxNameBytes-4)], i)
		}
		cmd := wu.Command{V: wu.WireVersion, Op: wu.OpUserAdd, Body: wu.Encode(wu.UserAdd{V: wu.WireVersion, Name: n, Email: email, KeyHash: wu.AccountKeyHash(key), Team: team})}
		_, err := request[wu.CreatedReply](ctx, s, wu.SubjectAdminCommand, cmd)
		var e *wu.Error
		switch {
		case err == nil:
			s.cfg.Logger.Info("BOINC account created", "user", n)
			return nil
		case errors.As(err, &e) && e.Code == wu.CodeConflict && strings.Contains(e.Message, "user named"):
			continue
		case errors.As(err, &e) && e.Code == wu.CodeNotFound && team != "":
			team = ""
			i--
			continue
		default:
			return err
		}
	}
	return wu.Errorf(wu.CodeConflict, "the user name %q is taken: choose another", name)
}

// userName makes a momonga user name of a BOINC one: letters, digits, '.',
// '_' and '-', spaces as '_'; the address's local part if nothing is left.
func userName(boinc, email string) string {
	clean := func(s string) string {
		var b strings.Builder
		for _, c := range strings.TrimSpace(s) {
			switch {
			case c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-' || c == '.':
				b.WriteRune(c)
			case c == ' ':
				b.WriteByte('_')
			}
		}
		return strings.TrimLeft(b.String(), ".")
	}
	n := clean(boinc)
	if n == "" {
		local, _, _ := strings.Cut(email, "@")
		n = clean(local)
	}
	return n[:min(len(n), wu.MaxNameBytes)]
}

// projectConfig answers get_project_config.php: the project's name and
// URL, how accounts are made, the platforms it has an app for.
func (s *Server) projectConfig(w http.ResponseWriter, _ *http.Request) {
	var x xmlWriter
	x.open("project_config")
	x.str("name", s.cfg.ProjectName)
	x.str("master_url", s.cfg.URL)
	x.str("web_rpc_url_base", s.cfg.URL)
	x.int("min_passwd_length", minPasswordLength)
	if !s.cfg.AllowAccountCreation {
		x.flag("account_creation_disabled")
		x.flag("client_account_creation_disabled")
	}
	x.open("platforms")
	for _, p := range Platforms {
		if _, ok := s.cfg.Runners[p]; ok {
			x.b.WriteString("<platform>\n")
			x.str("platform_name", p)
			x.b.WriteString("</platform>\n")
		}
	}
	x.close("platforms")
	x.int("local_revision", schedulerVersion)
	x.close("project_config")
	w.Header().Set("Content-Type", "text/xml")
	_, _ = w.Write(x.b.Bytes())
}
