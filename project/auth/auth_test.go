package auth

import (
	"encoding/base64"
	"os"
	"path/filepath"
	"testing"

	"github.com/nats-io/nkeys"
)

func TestKeysPersistPrivately(t *testing.T) {
	dir := t.TempDir()
	k1, err := LoadOrCreateKeys(dir)
	if err != nil {
		t.Fatal(err)
	}
	info, err := os.Stat(filepath.Join(dir, KeysFile))
	if err != nil || info.Mode().Perm() != 0o600 {
		t.Fatalf("keys file mode %v (%v)", info.Mode(), err)
	}
	k2, err := LoadOrCreateKeys(dir)
	if err != nil {
		t.Fatal(err)
	}
	if pub(k1.Project) != pub(k2.Project) || pub(k1.volunteers()) != pub(k2.volunteers()) {
		t.Fatal("keys changed across a reload")
	}
	if err := os.WriteFile(filepath.Join(dir, KeysFile), []byte("{"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadOrCreateKeys(dir); err == nil {
		t.Fatal("a corrupt keys file was accepted")
	}
}

func TestVerifyNonce(t *testing.T) {
	kp, _ := nkeys.CreateUser()
	other, _ := nkeys.CreateUser()
	pubKey, _ := kp.PublicKey()
	sign := func(k nkeys.KeyPair, nonce string) string {
		sig, _ := k.Sign([]byte(nonce))
		return base64URL(sig)
	}
	if !verifyNonce(pubKey, "n1", sign(kp, "n1")) {
		t.Fatal("a genuine signature refused")
	}
	for name, c := range map[string][3]string{
		"other key":     {pubKey, "n1", sign(other, "n1")},
		"other nonce":   {pubKey, "n2", sign(kp, "n1")},
		"no nonce":      {pubKey, "", sign(kp, "")},
		"garbage":       {pubKey, "n1", "!!"},
		"not a pub key": {"UXYZ", "n1", sign(kp, "n1")},
	} {
		if verifyNonce(c[0], c[1], c[2]) {
			t.Errorf("%s: accepted", name)
		}
	}
}

func base64URL(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }
