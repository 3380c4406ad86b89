// Package mandelbrot is the computation shared by the mandel sample apps: the
// command module (../../mandel) and the reactor modules (../../mandelr, and
// the C port in ../../mandelc, which follows the same arithmetic): a tile of
// the Mandelbrot set at deep zoom, rendered row by row as a binary PGM (P5)
// image that is identical bit for bit on every volunteer's CPU.
//
// Every floating-point product is rounded explicitly with a float64
// conversion, which the Go specification guarantees is never fused into a
// multiply-add, so a native build and the WebAssembly module (which has no
// fused multiply-add) compute the same image on any host.
package mandelbrot

import (
	"bufio"
	"errors"
	"math"
	"os"
	"slices"
	"strconv"

	"github.com/momonga-project/momonga/workunits/sdk"
)

// Defaults: a view of the seahorse valley 2·10^-11 wide (magnified about 10^11
// times), which takes seconds natively and tens of seconds under wazero. The
// pixel spacing is still more than 150 ulps of the coordinates, well within
// float64, and the 786 KB image stays under 1 MiB.
const (
	DefaultRe      = -0.743643887037158704752191506114774
	DefaultIm      = 0.131825904205311970493132056385139
	DefaultScale   = 2e-11
	DefaultWidth   = 1024
	DefaultHeight  = 768
	DefaultMaxIter = 20000
)

// Limits keep a careless work unit from exhausting memory: the renderer holds
// two 4-byte counts per pixel.
const (
	maxSide    = 1 << 14
	maxPixels  = 1 << 24
	maxMaxIter = 1 << 31
)

// ProgressFile is the file in the working directory where the apps write
// the fraction of rows done, for the runner to pick up.
const ProgressFile = "progress"

// Usage is the apps' argument synopsis.
const Usage = "[re [im [scale [width [height [maxiter]]]]]]"

// argNames names the arguments, in order, for the usage line and errors.
var argNames = [...]string{"re", "im", "scale", "width", "height", "maxiter"}

// Tile is what to render: centred on Re+Im·i, Scale wide in the complex
// plane, with square pixels.
type Tile struct {
	Re, Im, Scale          float64
	Width, Height, MaxIter int
}

// ParseTile reads the apps' arguments; those left out take the defaults.
func ParseTile(args []string) (Tile, error) {
	t := Tile{DefaultRe, DefaultIm, DefaultScale, DefaultWidth, DefaultHeight, DefaultMaxIter}
	if len(args) > len(argNames) {
		return t, errors.New("too many arguments")
	}
	floats := [...]*float64{&t.Re, &t.Im, &t.Scale}
	ints := [...]*int{&t.Width, &t.Height, &t.MaxIter}
	intMax := [...]int{maxSide, maxSide, maxMaxIter}
	for i, arg := range args {
		if i < len(floats) {
			f, err := strconv.ParseFloat(arg, 64)
			if err != nil || math.IsInf(f, 0) || math.IsNaN(f) || (floats[i] == &t.Scale && f <= 0) {
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
	if t.Width*t.Height > maxPixels {
		return t, errors.New("the image has more than " + strconv.Itoa(maxPixels) + " pixels")
	}
	return t, nil
}

// Row appends the escape times of row py (from the top) to counts, with
// MaxIter for the points that did not escape.
func (t Tile) Row(counts []uint32, py int) []uint32 {
	// Pixel centres lie at odd multiples of half a step from the centre; the
	// odd multiplier is an exact integer and halving the step is exact.
	half := float64(t.Scale/float64(t.Width)) / 2
	ci := t.Im - float64(float64(2*py-t.Height+1)*half)
	for px := range t.Width {
		cr := t.Re + float64(float64(2*px-t.Width+1)*half)
		counts = append(counts, EscapeTime(cr, ci, uint32(t.MaxIter)))
	}
	return counts
}

// EscapeTime iterates z ← z² + c from z = 0 and returns the first n at which
// |z| > 2, or maxIter. Each product is converted to float64 so that it is
// rounded on its own and never fused with the addition that follows.
func EscapeTime(cr, ci float64, maxIter uint32) uint32 {
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

// Shade maps escape times to grey levels by histogram equalisation, in
// integers only: points in the set are black, and an escaping point gets
// 1 + 254·r/e, where r is the number of escaping points that escaped sooner
// and e the number of escaping points. Deep tiles, whose escape times crowd
// into a narrow band far from zero, keep their contrast.
func Shade(counts []uint32, maxIter uint32) []byte {
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

// WritePGM writes the image of the escape times counts of t to stdout.
func (t Tile) WritePGM(counts []uint32) error {
	w := bufio.NewWriterSize(os.Stdout, 64<<10)
	w.WriteString("P5\n" + strconv.Itoa(t.Width) + " " + strconv.Itoa(t.Height) + "\n255\n")
	w.Write(Shade(counts, uint32(t.MaxIter)))
	return w.Flush()
}

// ReportProgress replaces the progress file at each whole percent. It writes
// a temporary file and renames it so that a reader never sees a partial
// value. Progress is advisory: if the file cannot be written, the render goes
// on.
func ReportProgress(done, total int) {
	if done*100/total == (done-1)*100/total {
		return
	}
	frac := strconv.FormatFloat(float64(done)/float64(total), 'f', -1, 64)
	if os.WriteFile(ProgressFile+".tmp", []byte(frac+"\n"), 0o644) == nil {
		os.Rename(ProgressFile+".tmp", ProgressFile)
	}
}

// notYet is the grey of the rows of the picture still to be computed: not
// black, which is the set itself.
const notYet = 40

// pictureSide bounds the picture of the tile so far: every step-th pixel of
// every step-th row, at most this wide.
const pictureSide = 256

// PublishPicture shows the tile as far as it is computed (rows done of
// counts) to the volunteer through the SDK, at every twentieth of the
// rows: a reduced copy, shaded as the image will be, with the rows to come
// dark grey. Like progress it is advisory, and the result does not depend on it.
func (t Tile) PublishPicture(counts []uint32, done int) {
	if done*20/t.Height == (done-1)*20/t.Height {
		return
	}
	step := (t.Width + pictureSide - 1) / pictureSide
	pw, ph := max(t.Width/step, 1), max(t.Height/step, 1)
	sample := make([]uint32, 0, pw*ph)
	for y := range ph {
		if y*step >= done {
			break
		}
		for x := range pw {
			sample = append(sample, counts[y*step*t.Width+x*step])
		}
	}
	grey := make([]byte, pw*ph)
	for i := range grey {
		grey[i] = notYet
	}
	copy(grey, Shade(sample, uint32(t.MaxIter)))
	sdk.Picture(pw, ph, grey)
}
