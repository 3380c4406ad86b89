// Package signing keeps the project's app-signing key in files (DESIGN §6):
// `momonga-project init` makes it, `app sign` uses the private half, which
// may live on an offline machine, and the server gives the public half to
// volunteers, who pin it when they attach.
package signing

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	wu "github.com/momonga-project/momonga/workunits"
)

// Names of the key files in a project's data directory.
const (
	PrivateFile = "signing.key" // PEM, PKCS #8, mode 0600
	PublicFile  = "signing.pub" // one line: ed25519:<base64>
)

// Init makes a new key pair in dir. It refuses to replace a key: apps
// signed with it, and volunteers who pinned it, would be orphaned.
func Init(dir string) (ed25519.PublicKey, error) {
	priv := filepath.Join(dir, PrivateFile)
	for _, p := range []string{priv, filepath.Join(dir, PublicFile)} {
		if _, err := os.Stat(p); err == nil {
			return nil, fmt.Errorf("%s exists: this project has a signing key already (remove it by hand to make a new one, and re-attach every volunteer)", p)
		}
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	pub, key, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, err
	}
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, err
	}
	f, err := os.OpenFile(priv, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return nil, err
	}
	if err := pem.Encode(f, &pem.Block{Type: "PRIVATE KEY", Bytes: der}); err != nil {
		f.Close()
		return nil, err
	}
	if err := f.Close(); err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(dir, PublicFile), []byte(wu.FormatPublicKey(pub)+"\n"), 0o644); err != nil {
		return nil, err
	}
	return pub, nil
}

// LoadPrivate reads a private key file written by Init. It refuses a file
// others may read.
func LoadPrivate(path string) (ed25519.PrivateKey, error) {
	info, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("signing key: %w", err)
	}
	if info.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("signing key %s may be read by others (mode %v): chmod 600 it", path, info.Mode().Perm())
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("signing key: %w", err)
	}
	block, _ := pem.Decode(b)
	if block == nil || block.Type != "PRIVATE KEY" {
		return nil, fmt.Errorf("signing key %s: not a PEM private key", path)
	}
	k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("signing key %s: %w", path, err)
	}
	ek, ok := k.(ed25519.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("signing key %s is not an ed25519 key", path)
	}
	return ek, nil
}

// LoadPublic reads a public key file written by Init.
func LoadPublic(path string) (ed25519.PublicKey, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("no signing key at %s: create one with `momonga-project init`", path)
	}
	if err != nil {
		return nil, err
	}
	k, err := wu.ParsePublicKey(string(b))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return k, nil
}

// Sign signs a module file with the key in keyPath and returns the
// manifest (workunits.AppSignature) to keep next to it.
func Sign(keyPath string, module []byte) ([]byte, error) {
	key, err := LoadPrivate(keyPath)
	if err != nil {
		return nil, err
	}
	if err := wu.CheckModule(module); err != nil {
		return nil, err
	}
	return wu.SignApp(key, module).Encode(), nil
}
