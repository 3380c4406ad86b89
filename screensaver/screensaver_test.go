package screensaver

import (
	"context"
	"image"
	"image/png"
	"os"
	"path/filepath"
	"testing"

	"github.com/momonga-project/momonga/client/control"
)

func TestParseWindowID(t *testing.T) {
	for in, want := range map[string]uint32{"0x1a00007": 0x1a00007, "0X10": 16, "4194311": 4194311, " 42\n": 42} {
		if got, err := ParseWindowID(in); err != nil || uint32(got) != want {
			t.Errorf("%q: %v %v, want %d", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "0", "0x", "window", "-5", "0x1ffffffff"} {
		if _, err := ParseWindowID(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

type still Scene

func (f still) Scene(context.Context) Scene { return Scene(f) }

// bar counts the pixels of the progress bar's colour.
func bar(t *testing.T, path string) int {
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	img, err := png.Decode(f)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	b := img.Bounds()
	for y := b.Min.Y; y < b.Max.Y; y++ {
		for x := b.Min.X; x < b.Max.X; x++ {
			r, g, bl, _ := img.At(x, y).RGBA()
			if r>>8 == 0x52 && g>>8 == 0xb0 && bl>>8 == 0xe6 {
				n++
			}
		}
	}
	return n
}

func TestFramesToPNG(t *testing.T) {
	dir := t.TempDir()
	pic := image.NewGray(image.Rect(0, 0, 64, 48))
	for i := range pic.Pix {
		pic.Pix[i] = uint8(i)
	}
	running := still{Running: true, Status: control.Status{Computing: true, Running: 1, Projects: 1},
		Tasks:    []control.Task{{ID: "wu1_0", App: "mandel", State: "running", Progress: 0.5, RemainingSeconds: 60}},
		Projects: []control.Project{{URL: "nats://p", Name: "p", Credit: &control.Credit{User: "ada", UserCredit: 3}}},
		Pictures: map[string]image.Image{"wu1_0": pic}}
	half := filepath.Join(dir, "half.png")
	if err := WritePNG(context.Background(), running, 640, 360, half); err != nil {
		t.Fatal(err)
	}
	running.Tasks[0].Progress = 0.9
	most := filepath.Join(dir, "most.png")
	if err := WritePNG(context.Background(), running, 640, 360, most); err != nil {
		t.Fatal(err)
	}
	if a, b := bar(t, half), bar(t, most); a < 100 || b <= a {
		t.Errorf("progress bar of 50%%: %d pixels, of 90%%: %d", a, b)
	}
	none := filepath.Join(dir, "none.png")
	if err := WritePNG(context.Background(), still{}, 640, 360, none); err != nil {
		t.Fatal(err)
	}
	if n := bar(t, none); n != 0 {
		t.Errorf("the not-running screen has %d pixels of a progress bar", n)
	}
	if err := WritePNG(context.Background(), still{}, 4, 4, none); err == nil {
		t.Error("a 4×4 frame was drawn")
	}
}
