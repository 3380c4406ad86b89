package workunits

import (
	"crypto/sha256"
	"encoding/hex"
)

// Hash names a blob by the lower-case hex SHA-256 of its content.
type Hash string

// HashOf returns the Hash of b.
func HashOf(b []byte) Hash {
	sum := sha256.Sum256(b)
	return Hash(hex.EncodeToString(sum[:]))
}

// Valid reports whether h has the form of a Hash.
func (h Hash) Valid() bool {
	if len(h) != 64 {
		return false
	}
	for i := 0; i < len(h); i++ {
		c := h[i]
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return true
}

// Short is the first twelve characters, for logs and tables.
func (h Hash) Short() string {
	if len(h) > 12 {
		return string(h[:12])
	}
	return string(h)
}
