//go:build unix && !darwin

package idle

import (
	"io"
	"log"
	"sync"
	"time"

	"github.com/jezek/xgb"
	"github.com/jezek/xgb/screensaver"
	"github.com/jezek/xgb/xproto"
)

func init() {
	// xgb logs connection trouble to stderr; a volunteer's client stays
	// quiet, and reports what matters itself.
	xgb.Logger = log.New(io.Discard, "", 0)
}

// x11Input asks the X server's screen-saver extension how long ago the last
// input was: one round trip, nothing to parse, and it sees every device the
// X server sees, remote desktops included.
type x11Input struct {
	display string

	mu      sync.Mutex
	conn    *xgb.Conn
	root    xproto.Drawable
	retryAt time.Time
}

// x11Retry is how long to wait before connecting again to a display that
// was not there or went away.
const x11Retry = 30 * time.Second

func newX11Input(display string) *x11Input { return &x11Input{display: display} }

func (x *x11Input) LastInput(now time.Time) (time.Time, bool) {
	x.mu.Lock()
	defer x.mu.Unlock()
	if x.conn == nil {
		if now.Before(x.retryAt) || !x.connect() {
			x.retryAt = now.Add(x11Retry)
			return time.Time{}, false
		}
	}
	reply, err := screensaver.QueryInfo(x.conn, x.root).Reply()
	if err != nil {
		x.conn.Close()
		x.conn = nil
		x.retryAt = now.Add(x11Retry)
		return time.Time{}, false
	}
	return now.Add(-time.Duration(reply.MsSinceUserInput) * time.Millisecond), true
}

func (x *x11Input) connect() bool {
	conn, err := xgb.NewConnDisplay(x.display)
	if err != nil {
		return false
	}
	if err := screensaver.Init(conn); err != nil {
		conn.Close()
		return false
	}
	x.conn = conn
	x.root = xproto.Drawable(xproto.Setup(conn).DefaultScreen(conn).Root)
	return true
}

// working reports whether the display answered last time.
func (x *x11Input) working() bool {
	x.mu.Lock()
	defer x.mu.Unlock()
	return x.conn != nil
}

func (x *x11Input) close() {
	x.mu.Lock()
	defer x.mu.Unlock()
	if x.conn != nil {
		x.conn.Close()
		x.conn = nil
	}
}
