package screensaver

import (
	"fmt"
	"image"
	"image/color"
	"image/draw"
	"math"
	"strings"
	"time"

	xdraw "golang.org/x/image/draw"
	"golang.org/x/image/font"
	"golang.org/x/image/font/gofont/gobold"
	"golang.org/x/image/font/gofont/goregular"
	"golang.org/x/image/font/opentype"
	"golang.org/x/image/math/fixed"

	"github.com/momonga-project/momonga/client/control"
)

// Renderer draws frames. It keeps what makes the animation smooth from one
// frame to the next: each task's progress as shown, which moves towards
// the reported one rather than jumping.
type Renderer struct {
	regular, bold *opentype.Font
	faces         map[faceKey]font.Face
	bg            *image.RGBA // the background of the current size
	shown         map[string]float64
	last          float64 // time of the previous frame, seconds
}

type faceKey struct {
	bold bool
	size int
}

// NewRenderer prepares the fonts (Go's own, built in).
func NewRenderer() (*Renderer, error) {
	reg, err := opentype.Parse(goregular.TTF)
	if err != nil {
		return nil, fmt.Errorf("font: %w", err)
	}
	bold, err := opentype.Parse(gobold.TTF)
	if err != nil {
		return nil, fmt.Errorf("font: %w", err)
	}
	return &Renderer{regular: reg, bold: bold, faces: map[faceKey]font.Face{}, shown: map[string]float64{}}, nil
}

func (r *Renderer) face(bold bool, size int) font.Face {
	size = max(size, 6)
	k := faceKey{bold, size}
	if f := r.faces[k]; f != nil {
		return f
	}
	src := r.regular
	if bold {
		src = r.bold
	}
	f, err := opentype.NewFace(src, &opentype.FaceOptions{Size: float64(size), DPI: 72, Hinting: font.HintingFull})
	if err != nil {
		panic(err) // only for sizes opentype refuses, which max() above rules out
	}
	r.faces[k] = f
	return f
}

// Colours.
var (
	top     = color.RGBA{0x0a, 0x14, 0x22, 0xff}
	bottom  = color.RGBA{0x16, 0x2c, 0x44, 0xff}
	white   = color.RGBA{0xee, 0xf3, 0xf8, 0xff}
	dim     = color.RGBA{0x8d, 0xa2, 0xb9, 0xff}
	accent  = color.RGBA{0x52, 0xb0, 0xe6, 0xff}
	warm    = color.RGBA{0xf0, 0xb4, 0x5a, 0xff}
	card    = color.RGBA{0x1d, 0x36, 0x52, 0xd8}
	barBack = color.RGBA{0x2a, 0x45, 0x63, 0xff}
	accentC = [3]uint8{accent.R, accent.G, accent.B}
)

// Render draws sc at time t (seconds, for the animation) into dst.
func (r *Renderer) Render(dst *image.RGBA, sc Scene, t float64) {
	b := dst.Bounds()
	r.background(b)
	copy(dst.Pix, r.bg.Pix)
	r.motes(dst, t)
	dt := min(max(t-r.last, 0), 1)
	r.last = t
	w, h := b.Dx(), b.Dy()
	unit := max(min(w, h*16/9)/64, 4) // a text size unit that suits the screen
	if !sc.Running {
		r.notRunning(dst, t, unit)
		return
	}
	r.text(dst, "momonga", b.Min.X+2*unit, b.Min.Y+4*unit, true, 3*unit, white)
	r.text(dst, time.Now().Format("15:04"), b.Max.X-8*unit, b.Min.Y+4*unit, false, 2*unit, dim)
	r.text(dst, headline(sc), b.Min.X+2*unit, b.Min.Y+7*unit, false, 2*unit, dim)

	var tasks []control.Task
	for _, tk := range sc.Tasks {
		if tk.State != "queued" {
			tasks = append(tasks, tk)
		}
	}
	if len(tasks) > 3 {
		tasks = tasks[:3]
	}
	cardH := 12 * unit
	y := b.Min.Y + 10*unit
	if n := len(tasks); n > 0 {
		y = b.Min.Y + max((h-n*(cardH+unit))/2, 10*unit)
	}
	seen := map[string]bool{}
	for _, tk := range tasks {
		seen[tk.ID] = true
		s, ok := r.shown[tk.ID]
		if !ok {
			s = tk.Progress
		}
		// Ease towards the reported progress: about a second to close
		// most of the gap, never backwards past it.
		s += (tk.Progress - s) * (1 - math.Exp(-3*dt))
		r.shown[tk.ID] = s
		r.taskCard(dst, image.Rect(b.Min.X+2*unit, y, b.Max.X-2*unit, y+cardH), tk, s, sc.Pictures[tk.ID], sc.Projects, t, unit)
		y += cardH + unit
	}
	for id := range r.shown {
		if !seen[id] {
			delete(r.shown, id)
		}
	}
	if len(tasks) == 0 {
		msg := "waiting for work from the projects"
		if sc.Status.Projects == 0 {
			msg = "no project attached"
		}
		r.centred(dst, msg, b.Min.Y+h/2, false, 3*unit, dim)
	}
	r.text(dst, creditLine(sc.Projects), b.Min.X+2*unit, b.Max.Y-2*unit, false, 2*unit, warm)
}

// headline says what the client is doing.
func headline(sc Scene) string {
	s := sc.Status
	switch {
	case s.Benchmarking:
		return "running the benchmarks"
	case !s.Computing && s.Reason != "":
		return "suspended: " + s.Reason
	}
	return fmt.Sprintf("computing · %d running · %d queued", s.Running, s.Queued)
}

// creditLine is the volunteer's credit at each project that told it.
func creditLine(ps []control.Project) string {
	var parts []string
	for _, p := range ps {
		if p.Credit == nil {
			continue
		}
		name := p.Name
		if name == "" {
			name = p.URL
		}
		c := p.Credit
		if c.User != "" {
			parts = append(parts, fmt.Sprintf("%s: your credit %.1f (RAC %.1f)", name, c.UserCredit, c.UserRAC))
		} else {
			parts = append(parts, fmt.Sprintf("%s: this computer's credit %.1f (RAC %.1f)", name, c.HostCredit, c.HostRAC))
		}
	}
	return strings.Join(parts, "   ·   ")
}

func projectName(ps []control.Project, url string) string {
	for _, p := range ps {
		if p.URL == url && p.Name != "" {
			return p.Name
		}
	}
	return url
}

func (r *Renderer) taskCard(dst *image.RGBA, rc image.Rectangle, tk control.Task, shown float64, pic image.Image, ps []control.Project, t float64, unit int) {
	draw.Draw(dst, rc, image.NewUniform(card), image.Point{}, draw.Over)
	x := rc.Min.X + unit
	if pic != nil {
		// The app's picture, scaled to the card's height.
		side := rc.Dy() - 2*unit
		pb := pic.Bounds()
		pw := side * pb.Dx() / max(pb.Dy(), 1)
		box := image.Rect(x, rc.Min.Y+unit, x+pw, rc.Min.Y+unit+side)
		xdraw.ApproxBiLinear.Scale(dst, box, pic, pb, draw.Src, nil)
		x += pw + unit
	}
	r.text(dst, tk.App, x, rc.Min.Y+3*unit, true, 2*unit+unit/2, white)
	state := tk.State
	if tk.Reason != "" && tk.State != "running" {
		state += " (" + tk.Reason + ")"
	}
	r.text(dst, projectName(ps, tk.Project)+" · task "+shortID(tk.ID)+" · "+state, x, rc.Min.Y+5*unit+unit/2, false, 3*unit/2, dim)
	bar := image.Rect(x, rc.Min.Y+7*unit, rc.Max.X-unit, rc.Min.Y+8*unit+unit/2)
	draw.Draw(dst, bar, image.NewUniform(barBack), image.Point{}, draw.Src)
	fill := bar
	fill.Max.X = bar.Min.X + int(float64(bar.Dx())*min(max(shown, 0), 1))
	draw.Draw(dst, fill, image.NewUniform(accent), image.Point{}, draw.Src)
	if tk.State == "running" && fill.Dx() > 0 {
		// A light that runs along the filled part: the task is alive.
		pos := fill.Min.X + int(math.Mod(t*0.35, 1)*float64(fill.Dx()))
		glow(dst, image.Rect(pos-2*unit, fill.Min.Y, pos+2*unit, fill.Max.Y).Intersect(fill), pos)
	}
	left := fmt.Sprintf("%.1f%%", 100*tk.Progress)
	if tk.RemainingSeconds > 0 {
		left += " · " + span(tk.RemainingSeconds) + " left"
	}
	r.text(dst, left, x, rc.Min.Y+11*unit-unit/4, false, 3*unit/2, white)
}

func shortID(id string) string {
	if len(id) > 14 {
		return id[:14] + "…"
	}
	return id
}

func span(secs float64) string {
	d := time.Duration(secs * float64(time.Second)).Round(time.Second)
	if d >= time.Hour {
		return fmt.Sprintf("%d h %02d min", int(d.Hours()), int(d.Minutes())%60)
	}
	if d >= time.Minute {
		return fmt.Sprintf("%d min %02d s", int(d.Minutes()), int(d.Seconds())%60)
	}
	return fmt.Sprintf("%d s", int(d.Seconds()))
}

// glow lightens rc, most at column centre.
func glow(dst *image.RGBA, rc image.Rectangle, centre int) {
	half := float64(max(rc.Dx(), 1)) / 2
	for y := rc.Min.Y; y < rc.Max.Y; y++ {
		for x := rc.Min.X; x < rc.Max.X; x++ {
			a := 1 - math.Abs(float64(x-centre))/half
			if a <= 0 {
				continue
			}
			i := dst.PixOffset(x, y)
			for c := range 3 {
				v := float64(dst.Pix[i+c])
				dst.Pix[i+c] = uint8(v + (255-v)*0.55*a)
			}
		}
	}
}

func (r *Renderer) notRunning(dst *image.RGBA, t float64, unit int) {
	b := dst.Bounds()
	pulse := 0.75 + 0.25*math.Sin(t*1.6)
	c := color.RGBA{uint8(float64(white.R) * pulse), uint8(float64(white.G) * pulse), uint8(float64(white.B) * pulse), 0xff}
	r.centred(dst, "momonga is not running", b.Min.Y+b.Dy()/2, true, 4*unit, c)
	r.centred(dst, "start it with `momonga run`; this screen shows its tasks once it runs", b.Min.Y+b.Dy()/2+4*unit, false, 3*unit/2, dim)
}

// background draws the gradient once per size.
func (r *Renderer) background(b image.Rectangle) {
	if r.bg != nil && r.bg.Bounds() == b {
		return
	}
	r.bg = image.NewRGBA(b)
	h := max(b.Dy()-1, 1)
	for y := b.Min.Y; y < b.Max.Y; y++ {
		f := float64(y-b.Min.Y) / float64(h)
		c := color.RGBA{mix(top.R, bottom.R, f), mix(top.G, bottom.G, f), mix(top.B, bottom.B, f), 0xff}
		row := r.bg.Pix[r.bg.PixOffset(b.Min.X, y) : r.bg.PixOffset(b.Min.X, y)+4*b.Dx()]
		for x := 0; x < len(row); x += 4 {
			row[x], row[x+1], row[x+2], row[x+3] = c.R, c.G, c.B, c.A
		}
	}
}

func mix(a, b uint8, f float64) uint8 { return uint8(float64(a) + (float64(b)-float64(a))*f) }

// motes are a few slow points of light drifting up the screen.
func (r *Renderer) motes(dst *image.RGBA, t float64) {
	b := dst.Bounds()
	w, h := float64(b.Dx()), float64(b.Dy())
	for i := range 40 {
		fi := float64(i)
		speed := 0.012 + 0.01*math.Mod(fi*0.37, 1)
		x := b.Min.X + int(w*math.Mod(fi*0.6180339+0.03*math.Sin(t*0.3+fi), 1))
		y := b.Min.Y + int(h*(1-math.Mod(fi*0.7548776+t*speed, 1)))
		a := 0.25 + 0.2*math.Sin(t*0.9+fi*1.3)
		size := 1 + i%3
		for dy := range size {
			for dx := range size {
				px, py := x+dx, y+dy
				if !image.Pt(px, py).In(b) {
					continue
				}
				j := dst.PixOffset(px, py)
				for c := range 3 {
					v := float64(dst.Pix[j+c])
					dst.Pix[j+c] = uint8(v + (float64(accentC[c])-v)*a)
				}
			}
		}
	}
}

func (r *Renderer) text(dst *image.RGBA, s string, x, y int, bold bool, size int, c color.RGBA) {
	d := font.Drawer{Dst: dst, Src: image.NewUniform(c), Face: r.face(bold, size), Dot: fixed.P(x, y)}
	d.DrawString(s)
}

func (r *Renderer) centred(dst *image.RGBA, s string, y int, bold bool, size int, c color.RGBA) {
	f := r.face(bold, size)
	w := font.MeasureString(f, s).Ceil()
	b := dst.Bounds()
	r.text(dst, s, b.Min.X+(b.Dx()-w)/2, y, bold, size, c)
}
