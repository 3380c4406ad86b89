// Command mandel renders a tile of the Mandelbrot set at deep zoom as a binary
// PGM (P5) image on stdout (see ../internal/mandelbrot).
//
// It is momonga's long-running sample application (DESIGN.md §6): CPU-bound,
// with a result that must be identical bit for bit on every volunteer's CPU so
// that replicas can be compared. It is a WASI command module; mandelr is the
// same computation as a reactor that the runner can checkpoint.
//
// Usage:
//
//	mandel [re [im [scale [width [height [maxiter]]]]]]
//
// The tile is centred on re+im·i and is scale wide in the complex plane; the
// pixels are square. Arguments left out take the defaults of the mandelbrot
// package: a deep view of the seahorse valley that takes seconds natively and
// tens of seconds under wazero, for trying suspension, progress and deadlines.
//
// While it runs, mandel writes the fraction of rows done (0 to 1, in decimal)
// to the file "progress" in its working directory, replacing it atomically at
// each whole percent, for the runner to pick up, and at every twentieth of the
// rows a reduced picture of the tile so far (workunits/sdk.Picture), which the
// volunteer's page and screensaver show.
//
// Bad arguments are reported on stderr with exit status 2.
package main

import (
	"os"

	"github.com/momonga-project/momonga/apps/internal/mandelbrot"
)

func main() {
	t, err := mandelbrot.ParseTile(os.Args[1:])
	if err != nil {
		os.Stderr.WriteString("mandel: " + err.Error() + "\nusage: mandel " + mandelbrot.Usage + "\n")
		os.Exit(2)
	}
	counts := make([]uint32, 0, t.Width*t.Height)
	for py := range t.Height {
		counts = t.Row(counts, py)
		mandelbrot.ReportProgress(py+1, t.Height)
		t.PublishPicture(counts, py+1)
	}
	if err := t.WritePGM(counts); err != nil {
		os.Stderr.WriteString("mandel: write image: " + err.Error() + "\n")
		os.Exit(1)
	}
}
