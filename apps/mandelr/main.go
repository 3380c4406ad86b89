// Command mandelr is mandel as a reactor module: the same image (see
// ../internal/mandelbrot), computed one row per call of its exported `step`
// function, so that the runner can take a memory snapshot between two rows
// and resume it on another volunteer, on any CPU (DESIGN.md §6).
//
// Built for wasip1 with -buildmode=c-shared, the runner calls `_initialize`
// once, then `step` until it returns 1 (done; the image is on stdout); 0
// means "call me again". Built natively, main calls step in the same loop,
// which is the baseline the benchmarks compare the module with.
//
// Usage, progress file and exit status are mandel's.
package main

import (
	"os"

	"github.com/momonga-project/momonga/apps/internal/mandelbrot"
)

// The render's state lives in globals, which the runner's memory snapshot
// carries between two calls of step.
var (
	tile    mandelbrot.Tile
	counts  []uint32
	row     int
	started bool
)

// Results of step.
const (
	again = 0
	done  = 1
)

func step() int32 {
	if !started {
		t, err := mandelbrot.ParseTile(os.Args[1:])
		if err != nil {
			os.Stderr.WriteString("mandelr: " + err.Error() + "\nusage: mandelr " + mandelbrot.Usage + "\n")
			os.Exit(2)
		}
		tile, counts, started = t, make([]uint32, 0, t.Width*t.Height), true
	}
	counts = tile.Row(counts, row)
	row++
	mandelbrot.ReportProgress(row, tile.Height)
	tile.PublishPicture(counts, row)
	if row < tile.Height {
		return again
	}
	if err := tile.WritePGM(counts); err != nil {
		os.Stderr.WriteString("mandelr: write image: " + err.Error() + "\n")
		os.Exit(1)
	}
	return done
}

func main() {
	for step() == again {
	}
}
