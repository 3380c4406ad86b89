// Package submitspec turns what `momonga-project submit` is given (a --spec
// file, the command line's settings, input files) into the batch sent to
// the project (workunits.Submit). The command stays a thin main; the rules
// of which setting wins live here, with their tests.
package submitspec

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	wu "github.com/momonga-project/momonga/workunits"
)

// File is a --spec file: a Submit whose units may name a local file as
// their stdin.
type File struct {
	wu.Submit
	Units []Unit `json:"units"`
}

// Unit is one work unit of a File.
type Unit struct {
	wu.UnitSpec
	StdinFile string `json:"stdin_file,omitempty"` // uploaded, and its hash made the unit's stdin
}

// Read reads a --spec file.
func Read(path string) (File, error) {
	var f File
	b, err := os.ReadFile(path)
	if err != nil {
		return f, err
	}
	if err := json.Unmarshal(b, &f); err != nil {
		return f, fmt.Errorf("%s: %w", path, err)
	}
	return f, nil
}

// Setting is a value of the command line, and whether it was given there:
// a given value wins over the spec; one not given (the flag's default)
// fills in only what the spec leaves out.
type Setting[T comparable] struct {
	Value T
	Given bool
}

// over is the setting's value when it is given or spec is unset, else
// spec.
func (s Setting[T]) over(spec T) T {
	var unset T
	if s.Given || spec == unset {
		return s.Value
	}
	return spec
}

// Flags are submit's command line.
type Flags struct {
	App, Batch           Setting[string]
	Replication, Quorum  Setting[int]
	Deadline, Checkpoint Setting[time.Duration]
	// Args are passed to every unit made from Inputs; given alone, they
	// make one unit.
	Args      []string
	ArgsGiven bool
	// Inputs are files, one unit each, the file's content its stdin.
	Inputs []string
	// NoShare computes the batch's units even where the project computes
	// or computed the same for another unit (Submit.NoShare).
	NoShare Setting[bool]
}

// Merge merges the spec and the command line into the batch to submit,
// without its units. A batch nothing names is named after its app and now.
func (f File) Merge(fl Flags, now time.Time) (wu.Submit, error) {
	s := f.Submit
	s.Units = nil
	s.App = fl.App.over(s.App)
	s.Batch = fl.Batch.over(s.Batch)
	if s.Batch == "" {
		s.Batch = s.App + "-" + now.UTC().Format("20060102-150405")
	}
	s.Replication = fl.Replication.over(s.Replication)
	s.Quorum = fl.Quorum.over(s.Quorum)
	s.DeadlineSeconds = Setting[float64]{fl.Deadline.Value.Seconds(), fl.Deadline.Given}.over(s.DeadlineSeconds)
	s.CheckpointSeconds = Setting[float64]{fl.Checkpoint.Value.Seconds(), fl.Checkpoint.Given}.over(s.CheckpointSeconds)
	s.NoShare = fl.NoShare.over(s.NoShare)
	if s.App == "" {
		return s, errors.New("name the app with --app (or in --spec)")
	}
	return s, nil
}

// WorkUnits are the batch's work units: the spec's, then one for each input
// file, or with neither, one with the arguments alone. put stores a stdin
// in the project's blob store and returns its hash.
func (f File) WorkUnits(fl Flags, put func([]byte) (wu.Hash, error)) ([]wu.UnitSpec, error) {
	upload := func(path string) (wu.Hash, error) {
		b, err := os.ReadFile(path)
		if err != nil {
			return "", err
		}
		return put(b)
	}
	var units []wu.UnitSpec
	for _, u := range f.Units {
		if u.StdinFile != "" {
			h, err := upload(u.StdinFile)
			if err != nil {
				return nil, err
			}
			u.Stdin = h
		}
		units = append(units, u.UnitSpec)
	}
	for _, path := range fl.Inputs {
		h, err := upload(path)
		if err != nil {
			return nil, err
		}
		units = append(units, wu.UnitSpec{Name: unitName(path), Args: fl.Args, Stdin: h})
	}
	if len(units) == 0 {
		if !fl.ArgsGiven {
			return nil, errors.New("nothing to submit: give INPUT files, --spec, or --arg for a single unit")
		}
		units = append(units, wu.UnitSpec{Args: fl.Args})
	}
	return units, nil
}

// unitName is an input file's base name with every character a name may
// not hold replaced by '_'.
func unitName(path string) string {
	return strings.Map(func(r rune) rune {
		if wu.ValidName(string(r)) {
			return r
		}
		return '_'
	}, filepath.Base(path))
}
