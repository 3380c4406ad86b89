package main

import (
	"fmt"

	"github.com/urfave/cli/v2"

	"github.com/momonga-project/momonga/cmd/internal/cliutil"
	"github.com/momonga-project/momonga/screensaver"
)

// screensaverCommand draws the running tasks: as an xscreensaver hack
// (-root, -window-id ID, $XSCREENSAVER_WINDOW), in a window of its own, or
// one frame to a PNG file.
func screensaverCommand() *cli.Command {
	return &cli.Command{
		Name:  "screensaver",
		Usage: "show what the client computes, full screen or in a window (an xscreensaver hack on X11)",
		Description: "With no option it opens a window of its own. For xscreensaver, add this line to the\n" +
			"programs: list of ~/.xscreensaver (or with xscreensaver-settings):\n\n" +
			"    momonga screensaver -root\n\n" +
			"xscreensaver then gives the window to draw in with $XSCREENSAVER_WINDOW, which is used\n" +
			"whenever it is set.",
		Flags: []cli.Flag{
			dataFlag,
			&cli.BoolFlag{Name: "root", Usage: "draw on the root window (xscreensaver's -root)"},
			&cli.StringFlag{Name: "window-id", Usage: "draw into this X window (decimal or 0x hexadecimal)"},
			&cli.StringFlag{Name: "png", Usage: "render one frame to this PNG file and exit"},
			&cli.StringFlag{Name: "size", Usage: "size of the frame (--png) or of the window of its own, WIDTHxHEIGHT", Value: "960x540"},
			&cli.StringFlag{Name: "display", Usage: "X display (default $DISPLAY)"},
			&cli.IntFlag{Name: "fps", Usage: "frames per second", Value: 20},
		},
		Action: func(c *cli.Context) error {
			var w, h int
			if _, err := fmt.Sscanf(c.String("size"), "%dx%d", &w, &h); err != nil {
				return fmt.Errorf("--size %q: give WIDTHxHEIGHT, e.g. 1280x720", c.String("size"))
			}
			src := screensaver.ControlSource{DataDir: c.String("data")}
			ctx, stop := cliutil.SignalContext(c.Context)
			defer stop()
			if p := c.String("png"); p != "" {
				if err := screensaver.WritePNG(ctx, src, w, h, p); err != nil {
					return err
				}
				fmt.Fprintf(c.App.Writer, "wrote %s (%dx%d)\n", p, w, h)
				return nil
			}
			t := screensaver.Target{Display: c.String("display"), Root: c.Bool("root"), Width: w, Height: h}
			win, err := screensaver.WindowFromEnv()
			if err != nil {
				return fmt.Errorf("$XSCREENSAVER_WINDOW: %w", err)
			}
			if id := c.String("window-id"); id != "" {
				if win, err = screensaver.ParseWindowID(id); err != nil {
					return err
				}
			}
			t.WindowID = win
			return screensaver.Run(ctx, screensaver.Config{Source: src, Target: t, FPS: c.Int("fps")})
		},
	}
}
