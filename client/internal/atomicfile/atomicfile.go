// Package atomicfile replaces files so that a crash leaves the old or the
// new content, never a mix: the client's state, preferences and reports
// depend on it.
package atomicfile

import (
	"os"
	"path/filepath"
)

// Write replaces path with b, written and synced to a temporary file in the
// same directory first, with permissions perm.
func Write(path string, b []byte, perm os.FileMode) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), ".tmp-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if err := tmp.Chmod(perm); err != nil {
		tmp.Close()
		return err
	}
	if _, err := tmp.Write(b); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}
