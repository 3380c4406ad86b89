package boinc

import (
	"bufio"
	"bytes"
	"crypto"
	"crypto/md5"
	"crypto/rand"
	"crypto/rsa"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"maps"
	"math/big"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	wu "github.com/momonga-project/momonga/workunits"
)

// Code signing as a stock BOINC client requires it (BOINC's lib/crypt.cpp):
// every file of an app version carries a signature by the project's
// code-signing key, an RSA key of at most 1024 bits. The signature is the
// key's PKCS #1 v1.5 block-type-1 encryption of the file's md5 as 32
// lower-case hex characters (no DigestInfo), and keys and signatures travel
// in BOINC's own text form: the modulus length in bits on a line, then the
// fixed-width fields of the key as hex, 32 bytes a line, closed by a line
// holding ".".

// Names of the key files in a project's data directory, as BOINC names them.
const (
	CodeSignPrivateFile = "code_sign_private" // mode 0600
	CodeSignPublicFile  = "code_sign_public"
)

// keyBits is the size of the keys made: BOINC's key structures hold 1024
// bits at most.
const keyBits = 1024

// fieldLen is the width of a full-size number in BOINC's key structures,
// primeLen of a half-size one.
const (
	fieldLen = keyBits / 8
	primeLen = fieldLen / 2
)

// InitCodeSigning makes the project's code-signing key pair in dir. Like
// the app-signing key, it refuses to replace one: BOINC clients attached
// to the project keep the public key they were first given.
func InitCodeSigning(dir string) error {
	priv := filepath.Join(dir, CodeSignPrivateFile)
	for _, p := range []string{priv, filepath.Join(dir, CodeSignPublicFile)} {
		if _, err := os.Stat(p); err == nil {
			return fmt.Errorf("%s exists: this project has a BOINC code-signing key already (BOINC clients attached to it would refuse apps signed by a new one)", p)
		}
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	key, err := rsa.GenerateKey(rand.Reader, keyBits)
	if err != nil {
		return fmt.Errorf("make the BOINC code-signing key: %w", err)
	}
	f, err := os.OpenFile(priv, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	if _, err := f.WriteString(FormatPrivateKey(key)); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, CodeSignPublicFile), []byte(FormatPublicKey(&key.PublicKey)), 0o644)
}

// ReadCodeSigningKey reads the private key InitCodeSigning wrote (or one
// made by BOINC's crypt_prog -genkey).
func ReadCodeSigningKey(path string) (*rsa.PrivateKey, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("%s is missing: make the BOINC code-signing key with `momonga-project init`, or, if the project keeps it elsewhere, name it with --code-sign-key", path)
		}
		return nil, err
	}
	key, err := ParsePrivateKey(b)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return key, nil
}

// ReadCodeSigningPublicKey reads the public key InitCodeSigning wrote: all
// a server needs to serve the files signed with its private half.
func ReadCodeSigningPublicKey(path string) (*rsa.PublicKey, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("%s is missing: make the BOINC code-signing key with `momonga-project init`, or copy the project's %s here", path, CodeSignPublicFile)
		}
		return nil, err
	}
	pub, err := ParsePublicKey(b)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return pub, nil
}

// SignApp makes the code signatures of an app's BOINC app versions, as
// BOINC's update_versions does when a version is added: its module's and
// each runner's (LoadRunners), in platform order. They go into the app's
// entry in the scheduler's log (workunits.AddApp), from where every server
// sends them without the private key.
func SignApp(key *rsa.PrivateKey, module []byte, runners map[string]Runner) ([]wu.CodeSignature, error) {
	sig, err := SignFile(key, md5Hex(module))
	if err != nil {
		return nil, fmt.Errorf("sign the module: %w", err)
	}
	sigs := []wu.CodeSignature{{File: wu.CodeSignedModule, MD5: md5Hex(module), Signature: sig}}
	for _, platform := range slices.Sorted(maps.Keys(runners)) {
		r := runners[platform]
		if sig, err = SignFile(key, r.MD5); err != nil {
			return nil, fmt.Errorf("sign the BOINC app for %s: %w", platform, err)
		}
		sigs = append(sigs, wu.CodeSignature{File: platform, MD5: r.MD5, Signature: sig})
	}
	return sigs, nil
}

// FormatPublicKey writes pub in BOINC's text form (R_RSA_PUBLIC_KEY:
// modulus, exponent).
func FormatPublicKey(pub *rsa.PublicKey) string {
	return formatKey(pub.N.BitLen(), [][]byte{
		pad(pub.N, fieldLen), pad(big.NewInt(int64(pub.E)), fieldLen),
	})
}

// FormatPrivateKey writes key in BOINC's text form (R_RSA_PRIVATE_KEY:
// modulus, public exponent, private exponent, the two primes, their CRT
// exponents and the CRT coefficient).
func FormatPrivateKey(key *rsa.PrivateKey) string {
	key.Precompute()
	p, q := key.Primes[0], key.Primes[1]
	return formatKey(key.N.BitLen(), [][]byte{
		pad(key.N, fieldLen), pad(big.NewInt(int64(key.E)), fieldLen), pad(key.D, fieldLen),
		pad(p, primeLen), pad(q, primeLen),
		pad(key.Precomputed.Dp, primeLen), pad(key.Precomputed.Dq, primeLen), pad(key.Precomputed.Qinv, primeLen),
	})
}

func pad(n *big.Int, width int) []byte { return n.FillBytes(make([]byte, width)) }

func formatKey(bits int, fields [][]byte) string {
	var b strings.Builder
	b.WriteString(strconv.Itoa(bits))
	b.WriteByte('\n')
	b.WriteString(formatHex(bytes.Join(fields, nil)))
	return b.String()
}

// formatHex writes data as BOINC's hex blocks: 32 bytes a line, then ".".
func formatHex(data []byte) string {
	var b strings.Builder
	for i := 0; i < len(data); i += 32 {
		b.WriteString(hex.EncodeToString(data[i:min(i+32, len(data))]))
		b.WriteByte('\n')
	}
	b.WriteString(".\n")
	return b.String()
}

// parseKey reads BOINC's text form of a key of n bytes after the bit count.
func parseKey(text []byte, n int) (bits int, data []byte, err error) {
	r := bufio.NewReader(bytes.NewReader(text))
	line, err := r.ReadString('\n')
	if err != nil && err != io.EOF {
		return 0, nil, err
	}
	bits, err = strconv.Atoi(strings.TrimSpace(line))
	if err != nil || bits < 512 || bits > keyBits {
		return 0, nil, fmt.Errorf("not a BOINC key: the first line must be the key's size in bits, 512 to %d", keyBits)
	}
	rest, _ := io.ReadAll(r)
	data, err = parseHex(rest, n)
	if err != nil {
		return 0, nil, err
	}
	if len(data) != n {
		return 0, nil, fmt.Errorf("not a BOINC key: %d bytes of key, not %d", len(data), n)
	}
	return bits, data, nil
}

// parseHex reads hex digits, ignoring white space, up to a "." or the end,
// and at most limit bytes.
func parseHex(text []byte, limit int) ([]byte, error) {
	var digits []byte
	for _, c := range text {
		switch {
		case c == '.':
			goto done
		case c == ' ' || c == '\n' || c == '\r' || c == '\t':
		case '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F':
			digits = append(digits, c)
			if len(digits) > 2*limit {
				return nil, fmt.Errorf("more than %d bytes of hex", limit)
			}
		default:
			return nil, fmt.Errorf("%q is not a hex digit", c)
		}
	}
done:
	if len(digits)%2 != 0 {
		return nil, errors.New("an odd number of hex digits")
	}
	return hex.DecodeString(string(digits))
}

// ParsePublicKey reads a public key in BOINC's text form.
func ParsePublicKey(text []byte) (*rsa.PublicKey, error) {
	bits, data, err := parseKey(text, 2*fieldLen)
	if err != nil {
		return nil, err
	}
	pub := &rsa.PublicKey{N: new(big.Int).SetBytes(data[:fieldLen])}
	e := new(big.Int).SetBytes(data[fieldLen:])
	if pub.N.BitLen() != bits || !e.IsInt64() || e.Int64() < 3 || e.Int64() > 1<<31-1 {
		return nil, errors.New("not a BOINC public key: its modulus or exponent is out of range")
	}
	pub.E = int(e.Int64())
	return pub, nil
}

// ParsePrivateKey reads a private key in BOINC's text form.
func ParsePrivateKey(text []byte) (*rsa.PrivateKey, error) {
	bits, data, err := parseKey(text, 3*fieldLen+5*primeLen)
	if err != nil {
		return nil, err
	}
	num := func(off, n int) *big.Int { return new(big.Int).SetBytes(data[off : off+n]) }
	e := num(fieldLen, fieldLen)
	if !e.IsInt64() || e.Int64() > 1<<31-1 {
		return nil, errors.New("not a BOINC private key: its public exponent is out of range")
	}
	key := &rsa.PrivateKey{
		PublicKey: rsa.PublicKey{N: num(0, fieldLen), E: int(e.Int64())},
		D:         num(2*fieldLen, fieldLen),
		Primes:    []*big.Int{num(3*fieldLen, primeLen), num(3*fieldLen+primeLen, primeLen)},
	}
	if key.N.BitLen() != bits {
		return nil, errors.New("not a BOINC private key: its size does not match its modulus")
	}
	if err := key.Validate(); err != nil {
		return nil, fmt.Errorf("not a BOINC private key: %w", err)
	}
	key.Precompute()
	return key, nil
}

// md5Hex is the md5 of data as BOINC writes it: 32 lower-case hex digits.
func md5Hex(data []byte) string {
	sum := md5.Sum(data)
	return hex.EncodeToString(sum[:])
}

// SignFile signs a file whose md5 (hex) is sum, as BOINC's sign_file does,
// and returns the signature in BOINC's text form.
func SignFile(key *rsa.PrivateKey, sum string) (string, error) {
	sig, err := rsa.SignPKCS1v15(nil, key, crypto.Hash(0), []byte(sum))
	if err != nil {
		return "", fmt.Errorf("sign: %w", err)
	}
	return formatHex(sig), nil
}

// VerifyFile checks a signature in BOINC's text form of a file whose md5
// (hex) is sum, as the BOINC client does before it runs an app's file.
func VerifyFile(pub *rsa.PublicKey, sum, signature string) error {
	sig, err := parseHex([]byte(signature), fieldLen+1)
	if err != nil {
		return fmt.Errorf("signature: %w", err)
	}
	return rsa.VerifyPKCS1v15(pub, crypto.Hash(0), []byte(sum), sig)
}
