package signing

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/momonga-project/momonga/apps"
	wu "github.com/momonga-project/momonga/workunits"
)

func TestInitSignVerify(t *testing.T) {
	dir := t.TempDir()
	pub, err := Init(dir)
	if err != nil {
		t.Fatal(err)
	}
	if info, err := os.Stat(filepath.Join(dir, PrivateFile)); err != nil || info.Mode().Perm() != 0o600 {
		t.Fatalf("private key mode %v %v", info.Mode(), err)
	}
	if _, err := Init(dir); err == nil || !strings.Contains(err.Error(), "exists") {
		t.Fatalf("second init: %v", err)
	}
	got, err := LoadPublic(filepath.Join(dir, PublicFile))
	if err != nil || !got.Equal(pub) {
		t.Fatalf("public key %v %v", got, err)
	}
	manifest, err := Sign(filepath.Join(dir, PrivateFile), apps.Primes)
	if err != nil {
		t.Fatal(err)
	}
	if err := wu.VerifyApp(pub, apps.Primes, manifest); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(filepath.Join(dir, PrivateFile), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Sign(filepath.Join(dir, PrivateFile), apps.Primes); err == nil || !strings.Contains(err.Error(), "chmod 600") {
		t.Fatalf("key readable by others: %v", err)
	}
	if _, err := LoadPublic(filepath.Join(t.TempDir(), PublicFile)); err == nil || !strings.Contains(err.Error(), "momonga-project init") {
		t.Fatalf("missing key: %v", err)
	}
}
