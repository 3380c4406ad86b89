// Package sdk is what a momonga app links to checkpoint itself and report its
// progress (DESIGN §6): the "app checkpoint" of a WASI command module, as
// BOINC apps do it. A reactor module (one that exports `step`) needs none of
// this: the runner snapshots its memory between two calls of step.
//
// A command module that runs for long does its work in a loop and, now and
// then:
//
//	if sdk.TimeToCheckpoint() {
//		sdk.Checkpoint(myState)   // the bytes it needs to continue from here
//	}
//	sdk.Progress(done / total)
//	sdk.Picture(w, h, pixels)     // optional: its state, for the volunteer to see
//
// and at its start:
//
//	state, err := sdk.Resume()    // nil: start from the beginning
//
// The runner takes the checkpoint the moment Checkpoint puts the state file
// in place, together with everything in the task's directory and the output
// written so far, and ships it to the project; on another host, the task
// starts again with that directory and output, and Resume returns the state.
// What the app writes to stdout after its last checkpoint is written again on
// resume, so an app should write its result at the end, or write it only
// between checkpoints it can repeat exactly.
//
// The package uses nothing but the standard library and files, so it works
// natively too (where nobody asks for checkpoints) and can be copied to any
// language: momonga.h is the same for C.
package sdk

import (
	"errors"
	"io/fs"
	"os"
	"strconv"
)

// ErrPictureSize is Picture's answer to pixels that do not fit the size.
var ErrPictureSize = errors.New("picture: give width×height grey bytes or width×height×3 RGB bytes, sides from 1 to MaxPictureSide")

// Files of the protocol between an app and the runner, relative to the
// task's directory (the app's working directory).
const (
	Dir          = ".momonga"
	StateFile    = ".momonga/state"     // the app's newest state, renamed into place
	StateTmpFile = ".momonga/state.tmp" // written first
	DueFile      = ".momonga/due"       // exists while the runner wants a checkpoint
	ProgressFile = "progress"           // the fraction done, in decimal
	// PictureFile is the app's picture of its current state, a binary
	// netpbm image (P5 grey or P6 colour, 8 bits), renamed into place; the
	// client's page and screensaver show it.
	PictureFile    = ".momonga/picture"
	PictureTmpFile = ".momonga/picture.tmp"
	// MaxPictureSide bounds a picture's width and height.
	MaxPictureSide = 1024
)

// TimeToCheckpoint reports whether the runner wants a checkpoint now. It is
// cheap enough to call in every iteration of an outer loop.
func TimeToCheckpoint() bool {
	_, err := os.Stat(DueFile)
	return err == nil
}

// Checkpoint saves state as the app's newest checkpoint. It writes the state
// to a temporary file and renames it into place, which is the moment the
// runner takes the checkpoint.
func Checkpoint(state []byte) error {
	if err := os.MkdirAll(Dir, 0o700); err != nil {
		return err
	}
	if err := os.WriteFile(StateTmpFile, state, 0o600); err != nil {
		return err
	}
	return os.Rename(StateTmpFile, StateFile)
}

// Resume returns the state of the checkpoint the task resumes from, or nil
// when it starts from the beginning.
func Resume() ([]byte, error) {
	b, err := os.ReadFile(StateFile)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	return b, err
}

// Progress reports the fraction of the work done, from 0 to 1. The runner
// reads it into the task's heartbeats and checkpoints.
func Progress(fraction float64) {
	fraction = min(max(fraction, 0), 1)
	if os.WriteFile(ProgressFile+".tmp", []byte(strconv.FormatFloat(fraction, 'f', -1, 64)+"\n"), 0o644) == nil {
		os.Rename(ProgressFile+".tmp", ProgressFile)
	}
}

// Picture publishes a picture of the app's current state (a Mandelbrot app:
// the tile computed so far), shown by the volunteer's page and screensaver
// while the task runs. pixels are width×height grey levels, or
// width×height RGB triples, row by row from the top. Keep it small (a few
// hundred pixels a side) and publish now and then, not at every step: it
// is written to disk each time, and it travels in the task's checkpoints.
func Picture(width, height int, pixels []byte) error {
	if width < 1 || height < 1 || width > MaxPictureSide || height > MaxPictureSide {
		return ErrPictureSize
	}
	magic := ""
	switch len(pixels) {
	case width * height:
		magic = "P5"
	case 3 * width * height:
		magic = "P6"
	default:
		return ErrPictureSize
	}
	if err := os.MkdirAll(Dir, 0o700); err != nil {
		return err
	}
	header := magic + "\n" + strconv.Itoa(width) + " " + strconv.Itoa(height) + "\n255\n"
	if err := os.WriteFile(PictureTmpFile, append([]byte(header), pixels...), 0o600); err != nil {
		return err
	}
	return os.Rename(PictureTmpFile, PictureFile)
}
