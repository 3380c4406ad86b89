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

// Files of the protocol between an app and the runner, relative to the
// task's directory (the app's working directory).
const (
	Dir          = ".momonga"
	StateFile    = ".momonga/state"     // the app's newest state, renamed into place
	StateTmpFile = ".momonga/state.tmp" // written first
	DueFile      = ".momonga/due"       // exists while the runner wants a checkpoint
	ProgressFile = "progress"           // the fraction done, in decimal
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
