package control

import (
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"html"
	"net"
	"net/http"
	"net/url"
	"strings"
)

// Who may call: the API and the page answer requests that come from this
// machine, are addressed to the very loopback address they are served on
// (a web page elsewhere can make the browser send requests here through a
// name of its own that resolves to 127.0.0.1, but it cannot make the Host
// header say 127.0.0.1:PORT: DNS rebinding stops here), come from a page of
// that address when a browser says where they come from (Origin: no other
// site can make the volunteer's browser act here), and carry the token, as
// a Bearer header (the command line) or as the page's cookie.

// sessionValue is the page's cookie: derived from the token, so that it
// holds across restarts of the client and is refused once the token is
// replaced, without being the token itself.
func sessionValue(token []byte) string {
	m := hmac.New(sha256.New, token)
	m.Write([]byte("momonga control page session"))
	return hex.EncodeToString(m.Sum(nil))
}

// cookieName carries the port: browsers share cookies between the ports of
// one host, and two clients (two data directories) may run side by side.
func (s *Server) cookieName() string {
	_, port, _ := net.SplitHostPort(s.Addr())
	return "momonga_session_" + port
}

// hostAllowed reports whether a Host header names this server: its own
// address, or localhost with its port.
func (s *Server) hostAllowed(h string) bool {
	if h == s.Addr() {
		return true
	}
	_, port, _ := net.SplitHostPort(s.Addr())
	return h == net.JoinHostPort("localhost", port)
}

// placeError refuses requests from elsewhere, to another name, or from
// another site's page.
func (s *Server) placeError(r *http.Request) *Error {
	if host, _, err := net.SplitHostPort(r.RemoteAddr); err != nil || !net.ParseIP(host).IsLoopback() {
		return &Error{Status: http.StatusForbidden, Message: "the control API answers this machine only"}
	}
	if !s.hostAllowed(r.Host) {
		return &Error{Status: http.StatusForbidden, Message: "the control API answers requests to " + s.Addr() + " only"}
	}
	if o := r.Header.Get("Origin"); o != "" && !s.originAllowed(o) {
		return &Error{Status: http.StatusForbidden, Message: "requests from another site's page are refused"}
	}
	return nil
}

func (s *Server) originAllowed(origin string) bool {
	u, err := url.Parse(origin)
	return err == nil && u.Scheme == "http" && u.Path == "" && s.hostAllowed(u.Host)
}

// authorize checks where a request comes from and that it carries the token
// or the page's cookie. A browser's request that changes something must say
// which page it comes from (Origin, or Referer from older browsers).
func (s *Server) authorize(r *http.Request) *Error {
	if e := s.placeError(r); e != nil {
		return e
	}
	if got, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer "); ok && subtle.ConstantTimeCompare([]byte(got), s.token) == 1 {
		return nil
	}
	if c, err := r.Cookie(s.cookieName()); err == nil && subtle.ConstantTimeCompare([]byte(c.Value), []byte(s.session)) == 1 {
		if r.Method == http.MethodGet || r.Method == http.MethodHead || s.fromOwnPage(r) {
			return nil
		}
		return &Error{Status: http.StatusForbidden, Message: "a change from a browser must come from the client's own page"}
	}
	s.log.Warn("control request refused: wrong or missing token", "path", r.URL.Path)
	return &Error{Status: http.StatusUnauthorized, Message: ErrUnauthorized.Error() + ": momonga reads it from " + TokenFile + " in the data directory; open the page with `momonga ui`"}
}

func (s *Server) fromOwnPage(r *http.Request) bool {
	if o := r.Header.Get("Origin"); o != "" {
		return s.originAllowed(o)
	}
	ref, err := url.Parse(r.Header.Get("Referer"))
	return err == nil && ref.Scheme == "http" && s.hostAllowed(ref.Host)
}

// guard puts a page behind authorize. A GET with ?token=T, the link
// `momonga ui` opens, sets the cookie and redirects to the same page
// without the token, so that it stays out of the history and the address
// bar.
func (s *Server) guard(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Frame-Options", "DENY")
		w.Header().Set("Referrer-Policy", "no-referrer")
		w.Header().Set("Content-Security-Policy", "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'; form-action 'self'")
		q := r.URL.Query()
		if tok := q.Get("token"); tok != "" && r.Method == http.MethodGet {
			if e := s.placeError(r); e != nil {
				pageError(w, e)
				return
			}
			if subtle.ConstantTimeCompare([]byte(tok), s.token) != 1 {
				s.log.Warn("page refused: wrong token", "path", r.URL.Path)
				pageError(w, &Error{Status: http.StatusUnauthorized, Message: "wrong token: open the page with `momonga ui`"})
				return
			}
			http.SetCookie(w, &http.Cookie{Name: s.cookieName(), Value: s.session, Path: "/", HttpOnly: true, SameSite: http.SameSiteStrictMode})
			q.Del("token")
			u := *r.URL
			u.RawQuery = q.Encode()
			http.Redirect(w, r, u.RequestURI(), http.StatusSeeOther)
			return
		}
		if e := s.authorize(r); e != nil {
			pageError(w, e)
			return
		}
		h.ServeHTTP(w, r)
	})
}

func pageError(w http.ResponseWriter, e *Error) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(e.Status)
	_, _ = w.Write([]byte("<!doctype html><title>momonga</title><p>" + html.EscapeString(e.Message) + "</p>\n"))
}

// picture serves a task's picture as PNG.
func (s *Server) picture(w http.ResponseWriter, r *http.Request) {
	if e := s.authorize(r); e != nil {
		w.Header().Set("Content-Type", "application/json")
		writeJSON(w, e.Status, e)
		return
	}
	png, err := s.backend.Picture(r.PathValue("id"))
	if err != nil {
		status := http.StatusInternalServerError
		if errors.Is(err, ErrNoPicture) {
			status = http.StatusNotFound
		}
		w.Header().Set("Content-Type", "application/json")
		writeJSON(w, status, &Error{Message: err.Error()})
		return
	}
	w.Header().Set("Content-Type", "image/png")
	w.Header().Set("Cache-Control", "no-store")
	_, _ = w.Write(png)
}

// ErrNoPicture is the Backend's answer for a task that has no picture (or
// no such task).
var ErrNoPicture = errors.New("no picture of that task")
