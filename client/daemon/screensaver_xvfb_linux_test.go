package daemon

import (
	"context"
	"image"
	"image/png"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/jezek/xgb"
	"github.com/jezek/xgb/xproto"

	"github.com/momonga-project/momonga/internal/wait"
	"github.com/momonga-project/momonga/internal/xvfbtest"
	"github.com/momonga-project/momonga/screensaver"
)

// grabRoot is the X server's image of its root window.
func grabRoot(t *testing.T, display string) *image.RGBA {
	t.Helper()
	conn, err := xgb.NewConnDisplay(display)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	screen := xproto.Setup(conn).DefaultScreen(conn)
	w, h := int(screen.WidthInPixels), int(screen.HeightInPixels)
	rep, err := xproto.GetImage(conn, xproto.ImageFormatZPixmap, xproto.Drawable(screen.Root), 0, 0, uint16(w), uint16(h), ^uint32(0)).Reply()
	if err != nil {
		t.Fatal(err)
	}
	img := image.NewRGBA(image.Rect(0, 0, w, h))
	for i := 0; i+3 < len(rep.Data) && i < 4*w*h; i += 4 {
		img.Pix[i], img.Pix[i+1], img.Pix[i+2], img.Pix[i+3] = rep.Data[i+2], rep.Data[i+1], rep.Data[i], 0xff
	}
	return img
}

// shade counts the pixels of the screensaver's progress-bar colour and
// the distinct colours of an image.
func shade(img *image.RGBA) (bar, colours int) {
	seen := map[[3]uint8]bool{}
	for i := 0; i < len(img.Pix); i += 4 {
		c := [3]uint8{img.Pix[i], img.Pix[i+1], img.Pix[i+2]}
		seen[c] = true
		if c == [3]uint8{0x52, 0xb0, 0xe6} {
			bar++
		}
	}
	return bar, len(seen)
}

func savePNG(t *testing.T, img image.Image, name string) {
	f, err := os.Create(filepath.Join(screenshotDir(t), name))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := png.Encode(f, img); err != nil {
		t.Fatal(err)
	}
}

// runScreensaver draws on the display's root window (xscreensaver's
// -root) from the client of dataDir until the test ends.
func runScreensaver(t *testing.T, display, dataDir string) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- screensaver.Run(ctx, screensaver.Config{Source: screensaver.ControlSource{DataDir: dataDir},
			Target: screensaver.Target{Display: display, Root: true}, FPS: 10})
	}()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("screensaver: %v", err)
		}
	})
}

// TestScreensaverUnderXvfb runs the screensaver on a virtual X display, as
// xscreensaver runs it with -root: with no client it shows that momonga is
// not running; against a client computing the Mandelbrot reactor it shows
// the task, its progress bar and the tile so far.
func TestScreensaverUnderXvfb(t *testing.T) {
	if testing.Short() {
		t.Skip("runs a project, a client and an X server")
	}
	display := xvfbtest.StartScreen(t, 960, 540)
	blank := grabRoot(t, display)
	if _, colours := shade(blank); colours > 2 {
		t.Fatalf("the new display is not blank: %d colours", colours)
	}

	// No client: the "not running" screen, which is drawn (many colours,
	// text) but has no progress bar.
	idleDir := t.TempDir()
	runScreensaver(t, display, idleDir)
	var frame *image.RGBA
	wait.For(t, 30*time.Second, "the not-running screen", func() bool {
		frame = grabRoot(t, display)
		_, colours := shade(frame)
		return colours > 50
	})
	if bar, _ := shade(frame); bar != 0 {
		t.Errorf("the not-running screen shows %d pixels of a progress bar", bar)
	}
	savePNG(t, frame, "screensaver-not-running.png")

	// A client computing: the screensaver of its data directory shows the
	// task, with a progress bar that grows, and the app's picture.
	display2 := xvfbtest.StartScreen(t, 960, 540)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	d, data := startMandelClient(t, ctx)
	// The worker compiles the module first: seconds, but minutes under the
	// race detector (the compiler is Go code) on a loaded machine.
	if !wait.Until(6*time.Minute, 50*time.Millisecond, func() bool {
		for _, tk := range d.Tasks() {
			if tk.Picture {
				return true
			}
		}
		return false
	}) {
		t.Fatalf("after 6 min, no task with a picture: tasks %+v, projects %+v", d.Tasks(), d.Projects())
	}
	runScreensaver(t, display2, data)
	var first int
	wait.For(t, 30*time.Second, "the task's progress bar", func() bool {
		frame = grabRoot(t, display2)
		first, _ = shade(frame)
		return first > 200
	})
	wait.For(t, 60*time.Second, "the progress bar growing", func() bool {
		frame = grabRoot(t, display2)
		bar, _ := shade(frame)
		return bar > first+100
	})
	bar, colours := shade(frame)
	t.Logf("progress bar %d → %d pixels; %d colours on screen", first, bar, colours)
	// The tile so far is grey: a screen of the card and text alone has few
	// grey levels.
	greys := map[uint8]bool{}
	for i := 0; i < len(frame.Pix); i += 4 {
		if p := frame.Pix[i : i+3]; p[0] == p[1] && p[1] == p[2] {
			greys[p[0]] = true
		}
	}
	if len(greys) < 64 {
		t.Errorf("only %d grey levels on screen: the app's picture is not shown", len(greys))
	}
	savePNG(t, frame, "screensaver-task.png")
}
