package runner

import (
	"bytes"
	"errors"
	"image/png"
	"os"
	"path/filepath"
	"testing"

	"github.com/momonga-project/momonga/workunits/sdk"
)

func TestReadPicture(t *testing.T) {
	dir := t.TempDir()
	if _, _, err := ReadPicture(dir); !errors.Is(err, ErrNoPicture) {
		t.Fatalf("no picture yet: %v", err)
	}
	t.Chdir(dir)
	if err := sdk.Picture(2, 1, []byte{10, 20, 30, 40, 50, 60}); err != nil {
		t.Fatal(err)
	}
	b, at, err := ReadPicture(dir)
	if err != nil || at.IsZero() {
		t.Fatalf("read: %v", err)
	}
	img, err := png.Decode(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	if r, g, bl, a := img.At(1, 0).RGBA(); r>>8 != 40 || g>>8 != 50 || bl>>8 != 60 || a>>8 != 255 {
		t.Errorf("pixel (1,0) = %d %d %d %d", r>>8, g>>8, bl>>8, a>>8)
	}
	// A symbolic link in its place (which the sandbox never lets an app
	// make) is not followed.
	os.Remove(filepath.Join(dir, sdk.PictureFile))
	if err := os.Symlink("/etc/passwd", filepath.Join(dir, sdk.PictureFile)); err != nil {
		t.Fatal(err)
	}
	if _, _, err := ReadPicture(dir); err == nil {
		t.Error("a symbolic link was read as a picture")
	}
}

func TestDecodeNetpbmRefuses(t *testing.T) {
	for _, bad := range []string{
		"", "P5", "P5\n2 1\n255\n\x00", "P5\n2 1\n65535\n\x00\x00", "P4\n1 1\n255\n\x00",
		"P5\n0 1\n255\n", "P5\n2000 1\n255\n", "P5\n-1 1\n255\n", "P6\n1 1\n255\n\x00\x00",
		"P5\n1 1\n255\n\x00\x00", "P5\n#c\n1 1\n255\n\x00",
	} {
		if _, err := DecodeNetpbm([]byte(bad)); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

func FuzzDecodeNetpbm(f *testing.F) {
	f.Add([]byte("P5\n2 1\n255\n\x01\x02"))
	f.Add([]byte("P6\n1 1\n255\n\x01\x02\x03"))
	f.Fuzz(func(t *testing.T, b []byte) {
		img, err := DecodeNetpbm(b)
		if err != nil {
			return
		}
		r := img.Bounds()
		if r.Dx() < 1 || r.Dy() < 1 || r.Dx() > sdk.MaxPictureSide || r.Dy() > sdk.MaxPictureSide {
			t.Fatalf("accepted bounds %v", r)
		}
		_ = img.At(r.Dx()-1, r.Dy()-1)
	})
}
