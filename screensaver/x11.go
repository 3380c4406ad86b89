package screensaver

import (
	"context"
	"errors"
	"fmt"
	"image"
	"io"
	"log"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/jezek/xgb"
	"github.com/jezek/xgb/xproto"
)

func init() {
	// xgb logs connection trouble to stderr; the command reports what
	// matters itself. (A package variable: set once, before any connection.)
	xgb.Logger = log.New(io.Discard, "", 0)
}

// Target says where to draw.
type Target struct {
	Display  string        // X display; "" = $DISPLAY
	Root     bool          // the root window (-root)
	WindowID xproto.Window // a window someone else made (-window-id, $XSCREENSAVER_WINDOW)
	// Otherwise a window of its own, of Width×Height.
	Width, Height int
}

// ParseWindowID reads a window id as xscreensaver gives it: hexadecimal
// with 0x, or decimal.
func ParseWindowID(s string) (xproto.Window, error) {
	s = strings.TrimSpace(s)
	base := 10
	if rest, ok := strings.CutPrefix(strings.ToLower(s), "0x"); ok {
		s, base = rest, 16
	}
	v, err := strconv.ParseUint(s, base, 32)
	if err != nil || v == 0 {
		return 0, fmt.Errorf("window id %q: give a number, decimal or hexadecimal with 0x", s)
	}
	return xproto.Window(v), nil
}

// Config is how Run draws.
type Config struct {
	Source Source
	Target Target
	FPS    int           // frames per second; default 20
	Poll   time.Duration // how often the client is asked; default 1 s
}

// Run draws frames into the target until ctx ends or its window goes away.
func Run(ctx context.Context, cfg Config) error {
	if cfg.FPS <= 0 {
		cfg.FPS = 20
	}
	if cfg.Poll <= 0 {
		cfg.Poll = time.Second
	}
	conn, err := xgb.NewConnDisplay(cfg.Target.Display)
	if err != nil {
		return fmt.Errorf("connect to the X display: %w", err)
	}
	defer conn.Close()
	out, err := newWindow(conn, cfg.Target)
	if err != nil {
		return err
	}
	rend, err := NewRenderer()
	if err != nil {
		return err
	}
	scenes := make(chan Scene, 1)
	go func() {
		t := time.NewTicker(cfg.Poll)
		defer t.Stop()
		for {
			sc := cfg.Source.Scene(ctx)
			select {
			case <-scenes:
			default:
			}
			scenes <- sc
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
		}
	}()
	var sc Scene
	start := time.Now()
	frame := time.NewTicker(time.Second / time.Duration(cfg.FPS))
	defer frame.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case sc = <-scenes:
		case <-frame.C:
		}
		if err := out.handleEvents(); err != nil {
			if errors.Is(err, errClosed) {
				return nil
			}
			return err
		}
		img := out.frame()
		rend.Render(img, sc, time.Since(start).Seconds())
		if err := out.show(img); err != nil {
			return err
		}
	}
}

// errClosed is how a window of its own ends: the person closed it.
var errClosed = errors.New("window closed")

// window is where frames go: it sends only the bands of rows that changed
// since the previous frame, in PutImage requests that fit the server's
// request size.
type window struct {
	conn   *xgb.Conn
	win    xproto.Window
	gc     xproto.Gcontext
	depth  byte
	w, h   int
	own    bool
	delete xproto.Atom
	img    *image.RGBA
	prev   []byte // the previous frame, as sent (BGRX)
	buf    []byte
}

func newWindow(conn *xgb.Conn, t Target) (*window, error) {
	setup := xproto.Setup(conn)
	screen := setup.DefaultScreen(conn)
	o := &window{conn: conn, depth: screen.RootDepth}
	switch {
	case t.WindowID != 0:
		o.win = t.WindowID
	case t.Root:
		o.win = screen.Root
	default:
		if err := o.create(screen, t.Width, t.Height); err != nil {
			return nil, err
		}
	}
	geo, err := xproto.GetGeometry(conn, xproto.Drawable(o.win)).Reply()
	if err != nil {
		return nil, fmt.Errorf("window %#x: %w", o.win, err)
	}
	o.w, o.h, o.depth = int(geo.Width), int(geo.Height), geo.Depth
	if o.depth != 24 && o.depth != 32 {
		return nil, fmt.Errorf("window %#x has depth %d: the screensaver draws on 24- or 32-bit true colour displays", o.win, o.depth)
	}
	gc, err := xproto.NewGcontextId(conn)
	if err != nil {
		return nil, err
	}
	if err := xproto.CreateGCChecked(conn, gc, xproto.Drawable(o.win), 0, nil).Check(); err != nil {
		return nil, fmt.Errorf("graphics context: %w", err)
	}
	o.gc = gc
	if !o.own {
		// Follow the size of a window that is not ours.
		_ = xproto.ChangeWindowAttributesChecked(conn, o.win, xproto.CwEventMask, []uint32{xproto.EventMaskStructureNotify}).Check()
	}
	return o, nil
}

func (o *window) create(screen *xproto.ScreenInfo, w, h int) error {
	if w <= 0 || h <= 0 {
		w, h = 960, 540
	}
	win, err := xproto.NewWindowId(o.conn)
	if err != nil {
		return err
	}
	err = xproto.CreateWindowChecked(o.conn, screen.RootDepth, win, screen.Root, 0, 0, uint16(w), uint16(h), 0,
		xproto.WindowClassInputOutput, screen.RootVisual, xproto.CwBackPixel|xproto.CwEventMask,
		[]uint32{0, xproto.EventMaskStructureNotify | xproto.EventMaskKeyPress}).Check()
	if err != nil {
		return fmt.Errorf("create window: %w", err)
	}
	title := "momonga"
	xproto.ChangeProperty(o.conn, xproto.PropModeReplace, win, xproto.AtomWmName, xproto.AtomString, 8, uint32(len(title)), []byte(title))
	protocols, err1 := xproto.InternAtom(o.conn, false, uint16(len("WM_PROTOCOLS")), "WM_PROTOCOLS").Reply()
	del, err2 := xproto.InternAtom(o.conn, false, uint16(len("WM_DELETE_WINDOW")), "WM_DELETE_WINDOW").Reply()
	if err1 == nil && err2 == nil {
		o.delete = del.Atom
		b := make([]byte, 4)
		xgb.Put32(b, uint32(del.Atom))
		xproto.ChangeProperty(o.conn, xproto.PropModeReplace, win, protocols.Atom, xproto.AtomAtom, 32, 1, b)
	}
	if err := xproto.MapWindowChecked(o.conn, win).Check(); err != nil {
		return fmt.Errorf("map window: %w", err)
	}
	o.win, o.own = win, true
	return nil
}

// handleEvents follows size changes and a window of its own being closed.
func (o *window) handleEvents() error {
	for {
		ev, err := o.conn.PollForEvent()
		if ev == nil && err == nil {
			return nil
		}
		if err != nil {
			continue // an error reply to a request of ours: not fatal here
		}
		switch e := ev.(type) {
		case xproto.ConfigureNotifyEvent:
			if int(e.Width) != o.w || int(e.Height) != o.h {
				o.w, o.h = int(e.Width), int(e.Height)
				o.img, o.prev = nil, nil
			}
		case xproto.DestroyNotifyEvent:
			return errClosed
		case xproto.ClientMessageEvent:
			if o.own && o.delete != 0 && xproto.Atom(e.Data.Data32[0]) == o.delete {
				return errClosed
			}
		case xproto.KeyPressEvent:
			if o.own {
				return errClosed
			}
		}
	}
}

// frame is the image to draw the next frame into.
func (o *window) frame() *image.RGBA {
	if o.img == nil || o.img.Bounds().Dx() != o.w || o.img.Bounds().Dy() != o.h {
		o.img = image.NewRGBA(image.Rect(0, 0, max(o.w, 1), max(o.h, 1)))
	}
	return o.img
}

// show sends the rows that changed.
func (o *window) show(img *image.RGBA) error {
	w, h := img.Bounds().Dx(), img.Bounds().Dy()
	if len(o.buf) != 4*w*h {
		o.buf = make([]byte, 4*w*h)
		o.prev = nil
	}
	// RGBA to the server's BGRX (true colour, little-endian, 32 bits per
	// pixel, which is what Xorg and Xvfb use at depth 24).
	p := img.Pix
	for i := 0; i < len(p); i += 4 {
		o.buf[i], o.buf[i+1], o.buf[i+2], o.buf[i+3] = p[i+2], p[i+1], p[i], 0
	}
	maxReq := int(xproto.Setup(o.conn).MaximumRequestLength)*4 - 64
	band := max(min(maxReq/(4*w), h), 1)
	for y := 0; y < h; y += band {
		n := min(band, h-y)
		rows := o.buf[4*w*y : 4*w*(y+n)]
		if o.prev != nil && string(rows) == string(o.prev[4*w*y:4*w*(y+n)]) {
			continue
		}
		xproto.PutImage(o.conn, xproto.ImageFormatZPixmap, xproto.Drawable(o.win), o.gc, uint16(w), uint16(n), 0, int16(y), 0, o.depth, rows)
	}
	if o.prev == nil {
		o.prev = make([]byte, len(o.buf))
	}
	copy(o.prev, o.buf)
	// A round trip, so that frames never pile up in the connection and an
	// error (the window went away) is seen.
	if _, err := xproto.GetInputFocus(o.conn).Reply(); err != nil {
		return fmt.Errorf("X server: %w", err)
	}
	return nil
}

// WindowFromEnv is the window xscreensaver gives in $XSCREENSAVER_WINDOW,
// or 0.
func WindowFromEnv() (xproto.Window, error) {
	s := os.Getenv("XSCREENSAVER_WINDOW")
	if s == "" {
		return 0, nil
	}
	return ParseWindowID(s)
}
