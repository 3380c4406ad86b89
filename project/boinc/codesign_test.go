package boinc

import (
	"bytes"
	"crypto/rand"
	"crypto/rsa"
	"os"
	"path/filepath"
	"strings"
	"testing"

	wu "github.com/momonga-project/momonga/workunits"
)

func TestCodeSigningKeyRoundTrip(t *testing.T) {
	dir := t.TempDir()
	if err := InitCodeSigning(dir); err != nil {
		t.Fatal(err)
	}
	if err := InitCodeSigning(dir); err == nil || !strings.Contains(err.Error(), "exists") {
		t.Fatalf("a second init replaced the key: %v", err)
	}
	st, err := os.Stat(filepath.Join(dir, CodeSignPrivateFile))
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("private key file: %v, mode %v", err, st.Mode())
	}
	key, err := ReadCodeSigningKey(filepath.Join(dir, CodeSignPrivateFile))
	if err != nil {
		t.Fatal(err)
	}
	pubText, err := os.ReadFile(filepath.Join(dir, CodeSignPublicFile))
	if err != nil {
		t.Fatal(err)
	}
	pub, err := ParsePublicKey(pubText)
	if err != nil {
		t.Fatal(err)
	}
	if !pub.Equal(&key.PublicKey) {
		t.Fatal("the public key file does not hold the private key's public half")
	}
	// BOINC's layout: the bit count, 256 bytes of modulus and exponent in
	// 8 lines of 32, then ".".
	lines := strings.Split(strings.TrimSuffix(string(pubText), "\n"), "\n")
	if lines[0] != "1024" || len(lines) != 10 || lines[9] != "." || len(lines[1]) != 64 {
		t.Fatalf("public key text is not in BOINC's layout:\n%s", pubText)
	}
	if FormatPrivateKey(key) != mustRead(t, filepath.Join(dir, CodeSignPrivateFile)) {
		t.Fatal("the private key does not read back to the same text")
	}

	sum := md5Hex([]byte("the runner's bytes"))
	sig, err := SignFile(key, sum)
	if err != nil {
		t.Fatal(err)
	}
	if err := VerifyFile(pub, sum, sig); err != nil {
		t.Fatalf("signature refused: %v", err)
	}
	if err := VerifyFile(pub, md5Hex([]byte("other bytes")), sig); err == nil {
		t.Fatal("the signature of one file verified for another")
	}
	other, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		t.Fatal(err)
	}
	if err := VerifyFile(&other.PublicKey, sum, sig); err == nil {
		t.Fatal("a signature verified under another key")
	}
}

func mustRead(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestParseKeyRefusesMalformedText(t *testing.T) {
	for _, text := range []string{"", "abc\n", "1024\nzz\n.\n", "1024\n00\n.\n", "64\n00\n.\n"} {
		if _, err := ParsePublicKey([]byte(text)); err == nil {
			t.Errorf("ParsePublicKey(%q) accepted", text)
		}
		if _, err := ParsePrivateKey([]byte(text)); err == nil {
			t.Errorf("ParsePrivateKey(%q) accepted", text)
		}
	}
}

func FuzzParseKey(f *testing.F) {
	f.Add([]byte("1024\n00ff\n.\n"))
	f.Add([]byte("512\n" + strings.Repeat("ab", 256) + "\n.\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		if pub, err := ParsePublicKey(b); err == nil && pub.N.BitLen() > keyBits {
			t.Fatalf("a %d-bit key was accepted", pub.N.BitLen())
		}
		_, _ = ParsePrivateKey(b)
	})
}

// TestSignAppVerifiesAsTheClientChecks: the signatures `app add` makes
// verify, with the public key a project's servers hold and send in
// code_sign_key, against the md5 of the files downloaded, as BOINC's client
// checks them (lib/crypt.cpp: check_file_signature); a file or a signature
// altered by a byte is refused.
func TestSignAppVerifiesAsTheClientChecks(t *testing.T) {
	dir := t.TempDir()
	if err := InitCodeSigning(dir); err != nil {
		t.Fatal(err)
	}
	key, err := ReadCodeSigningKey(filepath.Join(dir, CodeSignPrivateFile))
	if err != nil {
		t.Fatal(err)
	}
	pub, err := ReadCodeSigningPublicKey(filepath.Join(dir, CodeSignPublicFile))
	if err != nil {
		t.Fatal(err)
	}
	module := []byte("\x00asm\x01\x00\x00\x00 a module")
	runners := map[string]Runner{}
	files := map[string][]byte{wu.CodeSignedModule: module}
	for _, p := range []string{"windows_x86_64", testPlatform} {
		b := []byte("the runner for " + p)
		runners[p] = Runner{Path: RunnerFile(p), Size: int64(len(b)), MD5: md5Hex(b)}
		files[p] = b
	}
	sigs, err := SignApp(key, module, runners)
	if err != nil {
		t.Fatal(err)
	}
	if len(sigs) != 3 || sigs[0].File != wu.CodeSignedModule || sigs[1].File != "windows_x86_64" || sigs[2].File != testPlatform {
		t.Fatalf("signatures of %v", sigs)
	}
	// They are what the app's log entry may carry.
	entry := wu.AddApp{V: 1, Name: "app", Hash: wu.HashOf(module), Size: int64(len(module)), CodeSigs: sigs}
	if err := entry.Validate(); err != nil {
		t.Fatalf("the app entry refuses its own signatures: %v", err)
	}
	for _, s := range sigs {
		b := files[s.File]
		if s.MD5 != md5Hex(b) {
			t.Fatalf("%s: signed md5 %s, file's %s", s.File, s.MD5, md5Hex(b))
		}
		if err := VerifyFile(pub, md5Hex(b), s.Signature); err != nil {
			t.Fatalf("%s: signature refused: %v", s.File, err)
		}
		tampered := bytes.Clone(b)
		tampered[len(tampered)-1] ^= 1
		if err := VerifyFile(pub, md5Hex(tampered), s.Signature); err == nil {
			t.Errorf("%s: the signature verified for an altered file", s.File)
		}
		// The last digit of the signature's first line, changed.
		forged := []byte(s.Signature)
		i := bytes.IndexByte(forged, '\n') - 1
		forged[i] = "10"[min(int(forged[i]-'0'), 1)]
		if err := VerifyFile(pub, s.MD5, string(forged)); err == nil {
			t.Errorf("%s: an altered signature verified", s.File)
		}
	}
}
