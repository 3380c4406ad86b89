package screensaver

import (
	"context"
	"fmt"
	"image"
	"image/png"
	"os"
)

// WritePNG renders one frame of what src shows, of width×height, to a PNG
// file.
func WritePNG(ctx context.Context, src Source, width, height int, path string) error {
	if width < 16 || height < 16 || width > 8192 || height > 8192 {
		return fmt.Errorf("frame size %d×%d: give sides from 16 to 8192", width, height)
	}
	r, err := NewRenderer()
	if err != nil {
		return err
	}
	img := image.NewRGBA(image.Rect(0, 0, width, height))
	// At t = 2 s the pulse and the motes are well under way, and the
	// progress shown has reached the reported one.
	sc := src.Scene(ctx)
	r.Render(img, sc, 0)
	r.Render(img, sc, 2)
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("frame: %w", err)
	}
	if err := png.Encode(f, img); err != nil {
		f.Close()
		return fmt.Errorf("frame: %w", err)
	}
	return f.Close()
}
