package control

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/momonga-project/momonga/client/eventlog"
	"github.com/momonga-project/momonga/client/host"
	"github.com/momonga-project/momonga/client/prefs"
)

// ErrNotRunning is returned by Dial when no daemon serves the data directory.
var ErrNotRunning = errors.New("the momonga client is not running")

// Client calls a daemon's control API.
type Client struct {
	base  string
	token string
	http  *http.Client
}

// Dial finds the daemon of dataDir from the files it wrote there.
func Dial(dataDir string) (*Client, error) {
	addr, err := os.ReadFile(filepath.Join(dataDir, AddrFile))
	if errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("%w for %s (start it with `momonga run`)", ErrNotRunning, dataDir)
	}
	if err != nil {
		return nil, fmt.Errorf("control address: %w", err)
	}
	token, err := os.ReadFile(filepath.Join(dataDir, TokenFile))
	if err != nil {
		return nil, fmt.Errorf("control token: %w (run this as the user who runs the client; for the system service, join its group: sudo usermod -a -G momonga $USER, then log in again)", err)
	}
	return NewClient(strings.TrimSpace(string(addr)), strings.TrimSpace(string(token))), nil
}

// NewClient calls the API at addr with token.
func NewClient(addr, token string) *Client {
	return &Client{base: "http://" + addr, token: token, http: &http.Client{}}
}

func (c *Client) call(ctx context.Context, method, path string, in, out any) error {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return err
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, body)
	if err != nil {
		return err
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return fmt.Errorf("%w: %v", ErrNotRunning, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		var e Error
		if json.Unmarshal(b, &e) != nil || e.Message == "" {
			e.Message = resp.Status
		}
		e.Status = resp.StatusCode
		if e.Status == http.StatusUnauthorized {
			return fmt.Errorf("%w (%s)", ErrUnauthorized, e.Message)
		}
		return &e
	}
	if out == nil {
		return nil
	}
	return json.Unmarshal(b, out)
}

func (c *Client) Status(ctx context.Context) (s Status, err error) {
	return s, c.call(ctx, http.MethodGet, "/v1/status", nil, &s)
}

func (c *Client) Tasks(ctx context.Context) (t []Task, err error) {
	return t, c.call(ctx, http.MethodGet, "/v1/tasks", nil, &t)
}

func (c *Client) Projects(ctx context.Context) (p []Project, err error) {
	return p, c.call(ctx, http.MethodGet, "/v1/projects", nil, &p)
}

func (c *Client) Host(ctx context.Context) (h HostReport, err error) {
	return h, c.call(ctx, http.MethodGet, "/v1/host", nil, &h)
}

func (c *Client) Benchmark(ctx context.Context) (b host.Benchmarks, err error) {
	return b, c.call(ctx, http.MethodPost, "/v1/benchmark", nil, &b)
}

func (c *Client) Suspend(ctx context.Context) (s Status, err error) {
	return s, c.call(ctx, http.MethodPost, "/v1/suspend", nil, &s)
}

func (c *Client) Resume(ctx context.Context) (s Status, err error) {
	return s, c.call(ctx, http.MethodPost, "/v1/resume", nil, &s)
}

func (c *Client) Attach(ctx context.Context, url string, share float64) error {
	return c.call(ctx, http.MethodPost, "/v1/attach", AttachRequest{URL: url, Share: share}, nil)
}

// AttachWithKey attaches the host to a project with an account key, and
// says what the project answered.
func (c *Client) AttachWithKey(ctx context.Context, req AttachRequest) (a Attached, err error) {
	return a, c.call(ctx, http.MethodPost, "/v1/attach", req, &a)
}

func (c *Client) Detach(ctx context.Context, url string) error {
	return c.call(ctx, http.MethodPost, "/v1/detach", AttachRequest{URL: url}, nil)
}

func (c *Client) Prefs(ctx context.Context) (p prefs.Prefs, err error) {
	return p, c.call(ctx, http.MethodGet, "/v1/prefs", nil, &p)
}

func (c *Client) SetPref(ctx context.Context, key, value string) (p prefs.Prefs, err error) {
	return p, c.call(ctx, http.MethodPost, "/v1/prefs", SetPrefRequest{Key: key, Value: value}, &p)
}

// AttachAccount attaches a project with the volunteer's account key.
func (c *Client) AttachAccount(ctx context.Context, url, accountKey string, share float64) error {
	return c.call(ctx, http.MethodPost, "/v1/attach", AttachRequest{URL: url, Share: share, AccountKey: accountKey}, nil)
}

// Log is the newest n entries of the client's event log (0: all).
func (c *Client) Log(ctx context.Context, n int) (l []eventlog.Entry, err error) {
	return l, c.call(ctx, http.MethodGet, "/v1/log?n="+strconv.Itoa(n), nil, &l)
}

// Picture is the newest picture a task's app published, as PNG; the error
// wraps ErrNoPicture when it has none.
func (c *Client) Picture(ctx context.Context, task string) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.base+"/v1/tasks/"+url.PathEscape(task)+"/picture", nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Authorization", "Bearer "+c.token)
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrNotRunning, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return nil, err
	}
	switch resp.StatusCode {
	case http.StatusOK:
		return b, nil
	case http.StatusNotFound:
		return nil, fmt.Errorf("task %s: %w", task, ErrNoPicture)
	}
	return nil, fmt.Errorf("picture of task %s: %s", task, resp.Status)
}
