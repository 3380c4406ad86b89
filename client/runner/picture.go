package runner

import (
	"bytes"
	"errors"
	"fmt"
	"image"
	"image/png"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/momonga-project/momonga/workunits/sdk"
)

// An app may publish a picture of its state through the SDK (sdk.Picture):
// a netpbm file it renames into place in its directory. The daemon asks for
// it only when a display wants it (the page, the screensaver), so a picture
// costs nothing while nobody looks; ReadPicture checks it as the untrusted
// input it is and turns it into a PNG.

// ErrNoPicture is ReadPicture's answer when the app has published none.
var ErrNoPicture = errors.New("the app has published no picture")

// maxPictureFile bounds the file read: the header and the largest RGB
// picture.
const maxPictureFile = 64 + 3*sdk.MaxPictureSide*sdk.MaxPictureSide

// ReadPicture reads the picture the app running in dir (a task's directory,
// Spec.Dir) published last, and when, as a PNG.
func ReadPicture(dir string) ([]byte, time.Time, error) {
	path := filepath.Join(dir, sdk.PictureFile)
	st, err := os.Lstat(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, time.Time{}, ErrNoPicture
	}
	if err != nil {
		return nil, time.Time{}, fmt.Errorf("picture: %w", err)
	}
	if !st.Mode().IsRegular() || st.Size() > maxPictureFile {
		return nil, time.Time{}, errors.New("picture: not a picture file the SDK writes")
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, time.Time{}, fmt.Errorf("picture: %w", err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxPictureFile+1))
	if err != nil {
		return nil, time.Time{}, fmt.Errorf("picture: %w", err)
	}
	img, err := DecodeNetpbm(b)
	if err != nil {
		return nil, time.Time{}, fmt.Errorf("picture: %w", err)
	}
	var out bytes.Buffer
	enc := png.Encoder{CompressionLevel: png.BestSpeed}
	if err := enc.Encode(&out, img); err != nil {
		return nil, time.Time{}, fmt.Errorf("picture: %w", err)
	}
	return out.Bytes(), st.ModTime(), nil
}

// DecodeNetpbm reads a binary netpbm image as sdk.Picture writes it: P5
// (grey) or P6 (RGB), 8 bits, sides from 1 to sdk.MaxPictureSide, single
// spaces or newlines between the header's fields, no comments.
func DecodeNetpbm(b []byte) (image.Image, error) {
	fields := make([]string, 0, 4)
	rest := b
	for len(fields) < 4 {
		i := bytes.IndexAny(rest, " \n")
		if i <= 0 || i > 8 {
			return nil, errors.New("malformed netpbm header")
		}
		fields = append(fields, string(rest[:i]))
		rest = rest[i+1:]
	}
	w, errW := strconv.Atoi(fields[1])
	h, errH := strconv.Atoi(fields[2])
	if errW != nil || errH != nil || w < 1 || h < 1 || w > sdk.MaxPictureSide || h > sdk.MaxPictureSide {
		return nil, fmt.Errorf("netpbm size %q×%q: sides from 1 to %d", fields[1], fields[2], sdk.MaxPictureSide)
	}
	if fields[3] != "255" {
		return nil, errors.New("netpbm: only 8-bit pictures (maxval 255)")
	}
	switch fields[0] {
	case "P5":
		if len(rest) != w*h {
			return nil, fmt.Errorf("netpbm: %d bytes of pixels for %d×%d grey", len(rest), w, h)
		}
		return &image.Gray{Pix: rest, Stride: w, Rect: image.Rect(0, 0, w, h)}, nil
	case "P6":
		if len(rest) != 3*w*h {
			return nil, fmt.Errorf("netpbm: %d bytes of pixels for %d×%d RGB", len(rest), w, h)
		}
		img := image.NewNRGBA(image.Rect(0, 0, w, h))
		for i := range w * h {
			copy(img.Pix[4*i:4*i+3], rest[3*i:3*i+3])
			img.Pix[4*i+3] = 0xff
		}
		return img, nil
	}
	return nil, fmt.Errorf("netpbm type %q: give P5 (grey) or P6 (RGB)", fields[0])
}
