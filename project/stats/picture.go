package stats

import (
	"bytes"
	"errors"
	"fmt"
	"image"
	"image/color"
	"image/png"
	"strconv"
)

// Pictures of results: an app whose output is a PGM image (the Mandelbrot
// apps' tiles) has its batch's results shown on the batch's page, as PNG,
// which browsers draw and PGM they do not.

// MaxPicturePixels bounds an image decoded for a page.
const MaxPicturePixels = 16 << 20

// IsPGM reports whether b starts as a PGM image does.
func IsPGM(b []byte) bool {
	return len(b) > 2 && b[0] == 'P' && (b[1] == '5' || b[1] == '2')
}

// DecodePGM reads a binary (P5) or plain (P2) PGM image.
func DecodePGM(b []byte) (image.Image, error) {
	if !IsPGM(b) {
		return nil, errors.New("not a PGM image")
	}
	plain := b[1] == '2'
	p := &pnm{b: b, i: 2}
	w, h, maxval := p.number(), p.number(), p.number()
	if p.err != nil {
		return nil, p.err
	}
	if w <= 0 || h <= 0 || w*h > MaxPicturePixels || maxval <= 0 || maxval > 65535 {
		return nil, fmt.Errorf("PGM of %d×%d pixels, maxval %d: out of range", w, h, maxval)
	}
	if !plain {
		// One whitespace byte ends the header.
		if p.i >= len(b) || !space(b[p.i]) {
			return nil, errors.New("PGM header not followed by whitespace")
		}
		p.i++
	}
	img := image.NewGray16(image.Rect(0, 0, w, h))
	size := 1
	if maxval > 255 {
		size = 2
	}
	if !plain && len(b)-p.i < w*h*size {
		return nil, fmt.Errorf("PGM of %d×%d pixels holds %d bytes of pixels", w, h, len(b)-p.i)
	}
	for y := range h {
		for x := range w {
			var v int
			switch {
			case plain:
				v = p.number()
			case size == 1:
				v = int(b[p.i])
				p.i++
			default:
				v = int(b[p.i])<<8 | int(b[p.i+1])
				p.i += 2
			}
			if p.err != nil {
				return nil, p.err
			}
			if v > maxval {
				return nil, fmt.Errorf("PGM pixel %d above maxval %d", v, maxval)
			}
			img.SetGray16(x, y, color.Gray16{Y: uint16(v * 65535 / maxval)})
		}
	}
	return img, nil
}

// PGMToPNG converts a PGM image to PNG.
func PGMToPNG(b []byte) ([]byte, error) {
	img, err := DecodePGM(b)
	if err != nil {
		return nil, err
	}
	var out bytes.Buffer
	if err := (&png.Encoder{CompressionLevel: png.BestSpeed}).Encode(&out, img); err != nil {
		return nil, err
	}
	return out.Bytes(), nil
}

type pnm struct {
	b   []byte
	i   int
	err error
}

func space(c byte) bool {
	return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f'
}

// number reads the next decimal number, skipping whitespace and comments.
func (p *pnm) number() int {
	if p.err != nil {
		return 0
	}
	for p.i < len(p.b) {
		if c := p.b[p.i]; space(c) {
			p.i++
		} else if c == '#' {
			for p.i < len(p.b) && p.b[p.i] != '\n' {
				p.i++
			}
		} else {
			break
		}
	}
	start := p.i
	for p.i < len(p.b) && p.b[p.i] >= '0' && p.b[p.i] <= '9' && p.i-start < 9 {
		p.i++
	}
	n, err := strconv.Atoi(string(p.b[start:p.i]))
	if err != nil {
		p.err = errors.New("PGM: a number expected")
	}
	return n
}
