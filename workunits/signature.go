package workunits

import (
	"bytes"
	"crypto/ed25519"
	"encoding/base64"
	"fmt"
	"strconv"
	"strings"
)

// An app's signature is a short text manifest, written by `momonga-project
// app sign` next to the module (FILE.wasm.sig) and carried to volunteers with
// every assignment:
//
//	momonga-app-signature 1
//	key ed25519:<base64 public key>
//	sha256 <hex sha-256 of the module>
//	size <bytes of the module>
//	signature <base64 ed25519 signature of the four lines above>
//
// The signature covers the lines above it, newline included, so the key,
// the hash and the size are all bound to it. The format is strict: exactly
// these five lines in this order, so there is one encoding of each manifest.

// signatureHeader is the manifest's first line: its format and version.
const signatureHeader = "momonga-app-signature 1"

// MaxSignatureBytes bounds a manifest; a valid one is about 250 bytes.
const MaxSignatureBytes = 1024

// PublicKeyPrefix starts the text form of a project's public key.
const PublicKeyPrefix = "ed25519:"

// AppSignature is a parsed manifest.
type AppSignature struct {
	Key       ed25519.PublicKey
	Hash      Hash
	Size      int64
	Signature []byte
}

// FormatPublicKey writes a public key as "ed25519:<base64>".
func FormatPublicKey(k ed25519.PublicKey) string {
	return PublicKeyPrefix + base64.StdEncoding.EncodeToString(k)
}

// ParsePublicKey reads what FormatPublicKey wrote.
func ParsePublicKey(s string) (ed25519.PublicKey, error) {
	rest, ok := strings.CutPrefix(strings.TrimSpace(s), PublicKeyPrefix)
	if !ok {
		return nil, Errorf(CodeBadRequest, "public key %.20q does not start with %q", s, PublicKeyPrefix)
	}
	b, err := base64.StdEncoding.Strict().DecodeString(rest)
	if err != nil || len(b) != ed25519.PublicKeySize {
		return nil, Errorf(CodeBadRequest, "public key %.20q is not %d bytes of base64", s, ed25519.PublicKeySize)
	}
	return ed25519.PublicKey(b), nil
}

// SignApp signs a module with the project's private key.
func SignApp(key ed25519.PrivateKey, module []byte) AppSignature {
	s := AppSignature{Key: key.Public().(ed25519.PublicKey), Hash: HashOf(module), Size: int64(len(module))}
	s.Signature = ed25519.Sign(key, s.signed())
	return s
}

// signed is the part of the manifest the signature covers.
func (s AppSignature) signed() []byte {
	return fmt.Appendf(nil, "%s\nkey %s\nsha256 %s\nsize %d\n", signatureHeader, FormatPublicKey(s.Key), s.Hash, s.Size)
}

// Encode writes the manifest.
func (s AppSignature) Encode() []byte {
	return fmt.Appendf(s.signed(), "signature %s\n", base64.StdEncoding.EncodeToString(s.Signature))
}

// ParseAppSignature reads a manifest. It checks the form only: Verify checks
// the signature against a key and a module.
func ParseAppSignature(b []byte) (AppSignature, error) {
	var s AppSignature
	bad := func(format string, args ...any) (AppSignature, error) {
		return AppSignature{}, Errorf(CodeBadRequest, "app signature: "+format, args...)
	}
	if len(b) > MaxSignatureBytes {
		return bad("%d bytes, more than %d", len(b), MaxSignatureBytes)
	}
	lines := strings.Split(strings.TrimSuffix(string(b), "\n"), "\n")
	if len(lines) != 5 || lines[0] != signatureHeader {
		return bad("not a momonga signature manifest (want 5 lines starting %q)", signatureHeader)
	}
	field := func(line, name string) (string, bool) {
		v, ok := strings.CutPrefix(line, name+" ")
		return v, ok && v != ""
	}
	v, ok := field(lines[1], "key")
	if !ok {
		return bad("line 2 is not \"key ...\"")
	}
	key, err := ParsePublicKey(v)
	if err != nil {
		return bad("%v", err)
	}
	s.Key = key
	if v, ok = field(lines[2], "sha256"); !ok || !Hash(v).Valid() {
		return bad("line 3 is not \"sha256 <64 hex digits>\"")
	}
	s.Hash = Hash(v)
	if v, ok = field(lines[3], "size"); !ok {
		return bad("line 4 is not \"size <bytes>\"")
	}
	if s.Size, err = strconv.ParseInt(v, 10, 64); err != nil || s.Size <= 0 || strconv.FormatInt(s.Size, 10) != v {
		return bad("size %q is not a positive decimal number", v)
	}
	if v, ok = field(lines[4], "signature"); !ok {
		return bad("line 5 is not \"signature <base64>\"")
	}
	if s.Signature, err = base64.StdEncoding.Strict().DecodeString(v); err != nil || len(s.Signature) != ed25519.SignatureSize {
		return bad("signature is not %d bytes of base64", ed25519.SignatureSize)
	}
	// One encoding per manifest: what was read must be what Encode writes.
	if !bytes.Equal(bytes.TrimSuffix(b, []byte("\n")), bytes.TrimSuffix(s.Encode(), []byte("\n"))) {
		return bad("not in canonical form")
	}
	return s, nil
}

// Verify checks that the manifest was signed by key and describes module.
// Its errors say which of the three went wrong, for the volunteer's log.
func (s AppSignature) Verify(key ed25519.PublicKey, module []byte) error {
	return s.VerifyFor(key, HashOf(module), int64(len(module)))
}

// VerifyFor is Verify for a module known by its hash and size: what the
// project checks when an app is published, without reading the module.
func (s AppSignature) VerifyFor(key ed25519.PublicKey, hash Hash, size int64) error {
	if !s.Key.Equal(key) {
		return Errorf(CodeConflict, "signed by key %s, not by the project's key %s", FormatPublicKey(s.Key), FormatPublicKey(key))
	}
	if !ed25519.Verify(key, s.signed(), s.Signature) {
		return Errorf(CodeConflict, "the signature does not match its manifest: it was forged or altered")
	}
	if hash != s.Hash || size != s.Size {
		return Errorf(CodeConflict, "the module (sha256 %s, %d bytes) is not the one signed (sha256 %s, %d bytes): it was altered",
			hash.Short(), size, s.Hash.Short(), s.Size)
	}
	return nil
}

// VerifyApp parses manifest and verifies it for module and key: what a
// volunteer does before it runs a module.
func VerifyApp(key ed25519.PublicKey, module, manifest []byte) error {
	if len(manifest) == 0 {
		return Errorf(CodeConflict, "the module is not signed")
	}
	s, err := ParseAppSignature(manifest)
	if err != nil {
		return err
	}
	return s.Verify(key, module)
}
