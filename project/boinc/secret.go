package boinc

import (
	"crypto/rand"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/momonga-project/momonga/internal/atomicfile"
)

// SecretFile holds the BOINC side's secret in a project's data directory
// (mode 0600): every server of a cluster that serves BOINC clients needs a
// copy, as of the NATS keys.
const SecretFile = "boinc.secret"

// LoadOrCreateSecret reads the secret in dir, making it the first time.
func LoadOrCreateSecret(dir string) ([]byte, error) {
	path := filepath.Join(dir, SecretFile)
	b, err := os.ReadFile(path)
	if err == nil {
		if len(b) < MinSecretBytes {
			return nil, fmt.Errorf("%s holds %d bytes, fewer than %d: remove it to make a new one (BOINC accounts made with passwords will need their keys again)", path, len(b), MinSecretBytes)
		}
		return b, nil
	}
	if !errors.Is(err, os.ErrNotExist) {
		return nil, err
	}
	b = make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	return b, atomicfile.Write(path, b, 0o600)
}
