package control

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/cookiejar"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// page answers "page" to any request that got past the guard.
var page = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "page "+r.Method) })

// browser is an HTTP client with cookies that does not follow redirects.
func browser(t *testing.T) *http.Client {
	jar, _ := cookiejar.New(nil)
	return &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
}

func do(t *testing.T, c *http.Client, method, u string, hdr map[string]string, host string) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequest(method, u, nil)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	if host != "" {
		req.Host = host
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}

func TestPageTokenOnceThenCookie(t *testing.T) {
	dir, b, s := serveWith(t, page)
	tok, _ := os.ReadFile(filepath.Join(dir, TokenFile))
	base := "http://" + s.Addr()
	c := browser(t)

	if resp, _ := do(t, c, "GET", base+"/", nil, ""); resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("page without the token: %s", resp.Status)
	}
	if resp, _ := do(t, c, "GET", base+"/?token=00"+strings.TrimSpace(string(tok))[2:], nil, ""); resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("page with a wrong token: %s", resp.Status)
	}
	resp, _ := do(t, c, "GET", base+"/?token="+strings.TrimSpace(string(tok))+"&x=1", nil, "")
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/?x=1" {
		t.Fatalf("token link: %s to %q", resp.Status, resp.Header.Get("Location"))
	}
	ck := resp.Cookies()
	if len(ck) != 1 || !ck[0].HttpOnly || ck[0].SameSite != http.SameSiteStrictMode || strings.Contains(ck[0].Value, strings.TrimSpace(string(tok))) {
		t.Fatalf("cookie %+v", ck)
	}
	if resp, body := do(t, c, "GET", base+"/", nil, ""); resp.StatusCode != 200 || body != "page GET" {
		t.Fatalf("page with the cookie: %s %q", resp.Status, body)
	}
	// The cookie opens the API too, for the page's script.
	if resp, body := do(t, c, "GET", base+"/v1/status", nil, ""); resp.StatusCode != 200 || !strings.Contains(body, `"host":"h1"`) {
		t.Fatalf("API with the cookie: %s %q", resp.Status, body)
	}
	// A change from the page itself goes through; from another site's page,
	// or from nowhere said, it does not.
	own := map[string]string{"Origin": base}
	if resp, _ := do(t, c, "POST", base+"/v1/suspend", own, ""); resp.StatusCode != 200 || !b.suspended {
		t.Fatalf("suspend from the page: %s", resp.Status)
	}
	b.suspended = false
	for _, hdr := range []map[string]string{{"Origin": "http://evil.example"}, {"Origin": "null"}, {}, {"Referer": "http://evil.example/x"}} {
		if resp, _ := do(t, c, "POST", base+"/v1/suspend", hdr, ""); resp.StatusCode != http.StatusForbidden || b.suspended {
			t.Errorf("suspend with %v: %s", hdr, resp.Status)
		}
	}
	if resp, _ := do(t, c, "POST", base+"/", map[string]string{"Referer": base + "/"}, ""); resp.StatusCode != 200 {
		t.Errorf("form post with the page's Referer: %s", resp.Status)
	}
}

func TestForeignHostOrOriginRefused(t *testing.T) {
	dir, _, s := serveWith(t, page)
	tok := strings.TrimSpace(string(must(os.ReadFile(filepath.Join(dir, TokenFile)))))
	_, port, _ := strings.Cut(s.Addr(), ":")
	bearer := map[string]string{"Authorization": "Bearer " + tok}
	c := browser(t)
	for _, host := range []string{"evil.example:" + port, "127.0.0.2:" + port, "localhost:1", "127.0.0.1"} {
		for _, path := range []string{"/v1/status", "/", "/?token=" + tok} {
			if resp, _ := do(t, c, "GET", "http://"+s.Addr()+path, bearer, host); resp.StatusCode != http.StatusForbidden {
				t.Errorf("Host %s, %s: %s", host, path, resp.Status)
			}
		}
	}
	if resp, _ := do(t, c, "GET", "http://"+s.Addr()+"/v1/status", bearer, "localhost:"+port); resp.StatusCode != 200 {
		t.Errorf("Host localhost with the port: %s", resp.Status)
	}
	for _, origin := range []string{"http://evil.example", "https://" + s.Addr(), "http://" + s.Addr() + "/path", "null"} {
		hdr := map[string]string{"Authorization": "Bearer " + tok, "Origin": origin}
		if resp, _ := do(t, c, "GET", "http://"+s.Addr()+"/v1/status", hdr, ""); resp.StatusCode != http.StatusForbidden {
			t.Errorf("Origin %s: %s", origin, resp.Status)
		}
	}
}

func TestPictureAndLogThroughTheClient(t *testing.T) {
	dir, b, _ := serveWith(t, nil)
	c, err := Dial(dir)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if p, err := c.Picture(ctx, "t1"); err != nil || !strings.HasPrefix(string(p), "\x89PNG") {
		t.Errorf("picture: %q %v", p, err)
	}
	if _, err := c.Picture(ctx, "t2"); !errors.Is(err, ErrNoPicture) {
		t.Errorf("no picture: %v", err)
	}
	if l, err := c.Log(ctx, 5); err != nil || len(l) != 1 || l[0].Message != "task started" {
		t.Errorf("log %v %v", l, err)
	}
	if err := c.AttachAccount(ctx, "nats://p:4222", "KEY", 0); err != nil || b.attached[0] != "nats://p:4222 key KEY" {
		t.Errorf("attach with a key: %v %v", err, b.attached)
	}
	addr := strings.TrimSpace(string(must(os.ReadFile(filepath.Join(dir, AddrFile)))))
	if resp, err := http.Get("http://" + addr + "/v1/tasks/t1/picture"); err != nil || resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("picture without the token: %v %v", resp.Status, err)
	}
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}
