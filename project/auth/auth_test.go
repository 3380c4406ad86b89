package auth

import (
	"encoding/base64"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/nats-io/nkeys"
)

func TestRateLimiterWithAnInjectedClock(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	l := NewRateLimiter(10, 5, 3, func() time.Time { return now })
	for i := 0; i < 5; i++ {
		if d := l.Allow("h1"); !d.Allowed {
			t.Fatalf("request %d of a burst of 5 refused", i)
		}
	}
	d := l.Allow("h1")
	if d.Allowed || d.RetryAfter != 100*time.Millisecond || d.Flooding || d.Silent {
		t.Fatalf("sixth request: %+v, want refused, retry in 100ms", d)
	}
	if !l.Allow("h2").Allowed {
		t.Fatal("another host shares h1's bucket")
	}
	// Tokens come back at the rate.
	now = now.Add(250 * time.Millisecond)
	if !l.Allow("h1").Allowed || !l.Allow("h1").Allowed || l.Allow("h1").Allowed {
		t.Fatal("after 250ms at 10/s, want two requests allowed and the third refused")
	}
	// Refusals within a second: the third is a flood, reported once; the
	// ones after it are not answered.
	if d := l.Allow("h1"); !d.Flooding {
		t.Fatalf("third refusal within a second: %+v", d)
	}
	if d := l.Allow("h1"); d.Flooding || !d.Silent {
		t.Fatalf("fourth refusal: %+v", d)
	}
	// A host that backs off when refused is not flooding: two refusals a
	// second stay under the threshold of three, round after round.
	now = now.Add(2 * time.Second)
	for i := 0; i < 5; i++ {
		l.Allow("h3")
	}
	for i := 0; i < 4; i++ {
		now = now.Add(1100 * time.Millisecond)
		for j := 0; j < 6; j++ {
			l.Allow("h3")
		}
		if d := l.Allow("h3"); d.Allowed || d.Flooding || d.Silent {
			t.Fatalf("round %d: a client refused twice a second is flagged: %+v", i, d)
		}
	}
	// Idle buckets are forgotten.
	now = now.Add(time.Hour)
	for i := 0; i < 4096; i++ {
		l.Allow("busy")
	}
	l.mu.Lock()
	n := len(l.buckets)
	l.mu.Unlock()
	if n != 1 {
		t.Fatalf("%d buckets kept after an hour idle", n)
	}
}

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
	if pub(k1.Project) != pub(k2.Project) || pub(k1.hostAccount("h1")) != pub(k2.hostAccount("h1")) {
		t.Fatal("keys changed across a reload")
	}
	if pub(k1.hostAccount("h1")) == pub(k1.hostAccount("h2")) {
		t.Fatal("two hosts share an account key")
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
