// Command mandel renders a tile of the Mandelbrot set at deep zoom as a binary
// PGM (P5) image on stdout.
//
// It is momonga's long-running sample application (DESIGN.md §6): CPU-bound,
// with a result that must be identical bit for bit on every volunteer's CPU so
// that replicas can be compared. Every floating-point product is rounded
// explicitly with a float64 conversion, which the Go specification guarantees
// is never fused into a multiply-add, so the native build of this program and
// its WebAssembly module (which has no fused multiply-add) compute the same
// image on any host.
//
// Usage:
//
//	mandel [re [im [scale [width [height [maxiter]]]]]]
//
// The tile is centred on re+im·i and is scale wide in the complex plane; the
// pixels are square. Arguments left out take the defaults below: a deep view
// of the seahorse valley that takes seconds natively and tens of seconds under
// wazero, for trying suspension, progress and deadlines.
//
// While it runs, mandel writes the fraction of rows done (0 to 1, in decimal)
// to the file "progress" in its working directory, replacing it atomically at
// each whole percent, for the runner to pick up. Progress is advisory: if the
// file cannot be written, the render goes on.
//
// Bad arguments are reported on stderr with exit status 2.
package main

import (
	"bufio"
	"errors"
	"math"
	"os"
	"slices"
	"strconv"
)

// Defaults: a view of the seahorse valley 2·10^-11 wide (magnified about 10^11
// times), which takes seconds natively and tens of seconds under wazero. The
// pixel spacing is still more than 150 ulps of the coordinates, well within
// float64, and the 786 KB image stays under 1 MiB.
const (
	defaultRe      = -0.743643887037158704752191506114774
	defaultIm      = 0.131825904205311970493132056385139
	defaultScale   = 2e-11
	defaultWidth   = 1024
	defaultHeight  = 768
	defaultMaxIter = 20000
)

// Limits keep a careless work unit from exhausting memory: the renderer holds
// two 4-byte counts per pixel.
const (
	maxSide    = 1 << 14
	maxPixels  = 1 << 24
	maxMaxIter = 1 << 31
)

const progressFile = "progress"

// argNames names the arguments, in order, for the usage line and errors.
var argNames = [...]string{"re", "im", "scale", "width", "height", "maxiter"}

type tile struct {
	re, im, scale          float64
	width, height, maxIter int
}

func main() {
	t, err := parseTile(os.Args[1:])
	if err != nil {
		os.Stderr.WriteString("mandel: " + err.Error() + "\nusage: mandel [re [im [scale [width [height [maxiter]]]]]]\n")
		os.Exit(2)
	}
	counts := t.render(reportProgress)
	out := bufio.NewWriterSize(os.Stdout, 64<<10)
	writePGM(out, t.width, t.height, shade(counts, uint32(t.maxIter)))
	if err := out.Flush(); err != nil {
		os.Stderr.WriteString("mandel: write image: " + err.Error() + "\n")
		os.Exit(1)
	}
}

func parseTile(args []string) (tile, error) {
	t := tile{defaultRe, defaultIm, defaultScale, defaultWidth, defaultHeight, defaultMaxIter}
	if len(args) > len(argNames) {
		return t, errors.New("too many arguments")
	}
	floats := [...]*float64{&t.re, &t.im, &t.scale}
	ints := [...]*int{&t.width, &t.height, &t.maxIter}
	intMax := [...]int{maxSide, maxSide, maxMaxIter}
	for i, arg := range args {
		if i < len(floats) {
			f, err := strconv.ParseFloat(arg, 64)
			if err != nil || math.IsInf(f, 0) || math.IsNaN(f) || (floats[i] == &t.scale && f <= 0) {
				return t, errors.New(strconv.Quote(arg) + " is not a valid " + argNames[i])
			}
			*floats[i] = f
			continue
		}
		j := i - len(floats)
		n, err := strconv.Atoi(arg)
		if err != nil || n < 1 || n > intMax[j] {
			return t, errors.New(argNames[i] + " " + strconv.Quote(arg) + " is not an integer between 1 and " + strconv.Itoa(intMax[j]))
		}
		*ints[j] = n
	}
	if t.width*t.height > maxPixels {
		return t, errors.New("the image has more than " + strconv.Itoa(maxPixels) + " pixels")
	}
	return t, nil
}

// render returns the escape time of every pixel, row by row from the top, with
// maxIter for the points that did not escape. It calls progress after each row
// with the number of rows done.
func (t tile) render(progress func(done, total int)) []uint32 {
	counts := make([]uint32, 0, t.width*t.height)
	// Pixel centres lie at odd multiples of half a step from the centre; the
	// odd multiplier is an exact integer and halving the step is exact.
	half := float64(t.scale/float64(t.width)) / 2
	for py := range t.height {
		ci := t.im - float64(float64(2*py-t.height+1)*half)
		for px := range t.width {
			cr := t.re + float64(float64(2*px-t.width+1)*half)
			counts = append(counts, escapeTime(cr, ci, uint32(t.maxIter)))
		}
		progress(py+1, t.height)
	}
	return counts
}

// escapeTime iterates z ← z² + c from z = 0 and returns the first n at which
// |z| > 2, or maxIter. Each product is converted to float64 so that it is
// rounded on its own and never fused with the addition that follows.
func escapeTime(cr, ci float64, maxIter uint32) uint32 {
	var x, y float64
	for n := range maxIter {
		x2 := float64(x * x)
		y2 := float64(y * y)
		if x2+y2 > 4 {
			return n
		}
		xy := float64(x * y)
		y = xy + xy + ci
		x = x2 - y2 + cr
	}
	return maxIter
}

// shade maps escape times to grey levels by histogram equalisation, in
// integers only: points in the set are black, and an escaping point gets
// 1 + 254·r/e, where r is the number of escaping points that escaped sooner
// and e the number of escaping points. Deep tiles, whose escape times crowd
// into a narrow band far from zero, keep their contrast.
func shade(counts []uint32, maxIter uint32) []byte {
	sorted := slices.Clone(counts)
	slices.Sort(sorted)
	escaped, _ := slices.BinarySearch(sorted, maxIter)
	grey := make([]byte, len(counts))
	for i, n := range counts {
		if n == maxIter {
			continue
		}
		r, _ := slices.BinarySearch(sorted, n)
		grey[i] = byte(1 + 254*uint64(r)/uint64(escaped))
	}
	return grey
}

func writePGM(w *bufio.Writer, width, height int, grey []byte) {
	w.WriteString("P5\n" + strconv.Itoa(width) + " " + strconv.Itoa(height) + "\n255\n")
	w.Write(grey)
}

// reportProgress replaces the progress file at each whole percent. It writes a
// temporary file and renames it so that a reader never sees a partial value.
func reportProgress(done, total int) {
	if done*100/total == (done-1)*100/total {
		return
	}
	frac := strconv.FormatFloat(float64(done)/float64(total), 'f', -1, 64)
	if os.WriteFile(progressFile+".tmp", []byte(frac+"\n"), 0o644) == nil {
		os.Rename(progressFile+".tmp", progressFile)
	}
}
