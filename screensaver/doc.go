// Package screensaver draws what the volunteer client is computing (DESIGN
// §1, §7): the running tasks with their app, project and progress, the
// picture an app publishes of its state (a Mandelbrot tile as far as it is
// computed), and the volunteer's credit, read from the client's local
// control API; with no client running, a "momonga is not running" screen.
//
// Frames are drawn in pure Go into an image (render.go), so that one frame
// can be written to a PNG file and every frame shown alike. On X11 they go
// to a window through the X protocol (x11.go, github.com/jezek/xgb, no
// cgo), following xscreensaver's contract for its "hacks": draw into the
// window named by $XSCREENSAVER_WINDOW, or the root window with -root, or a
// window given with -window-id; otherwise a window of its own.
package screensaver
