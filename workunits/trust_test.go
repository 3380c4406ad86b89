package workunits

import (
	"bytes"
	"crypto/ed25519"
	"math"
	"strings"
	"testing"
)

// testKey is a fixed key, so that seeds and failures are reproducible.
func testKey(seed byte) ed25519.PrivateKey {
	return ed25519.NewKeyFromSeed(bytes.Repeat([]byte{seed}, ed25519.SeedSize))
}

func TestAppSignatureRefusesTamperedForeignAndUnsigned(t *testing.T) {
	project, other := testKey(1), testKey(2)
	pub := project.Public().(ed25519.PublicKey)
	module := []byte("\x00asm\x01\x00\x00\x00 pretend module")
	manifest := SignApp(project, module).Encode()
	if err := VerifyApp(pub, module, manifest); err != nil {
		t.Fatalf("genuine module refused: %v", err)
	}
	tampered := append([]byte(nil), module...)
	tampered[len(tampered)-1] ^= 1
	cases := []struct {
		name     string
		module   []byte
		manifest []byte
		want     string
	}{
		{"tampered module", tampered, manifest, "altered"},
		{"signed by another key", module, SignApp(other, module).Encode(), "not by the project's key"},
		{"unsigned", module, nil, "not signed"},
		{"manifest edited to the tampered hash", tampered, bytes.Replace(manifest, []byte(HashOf(module)), []byte(HashOf(tampered)), 1), "forged or altered"},
		{"garbage", module, []byte("hello"), "not a momonga signature manifest"},
	}
	for _, c := range cases {
		err := VerifyApp(pub, c.module, c.manifest)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want an error saying %q", c.name, err, c.want)
		}
	}
	// The text form of the key survives a round trip.
	k, err := ParsePublicKey(FormatPublicKey(pub))
	if err != nil || !k.Equal(pub) {
		t.Fatalf("public key round trip: %v", err)
	}
	for _, bad := range []string{"", "ed25519:", "ed25519:AAAA", "rsa:" + FormatPublicKey(pub)[8:]} {
		if _, err := ParsePublicKey(bad); err == nil {
			t.Errorf("ParsePublicKey(%q) accepted", bad)
		}
	}
}

func FuzzParseAppSignature(f *testing.F) {
	key := testKey(3)
	good := SignApp(key, []byte("module")).Encode()
	f.Add(good)
	f.Add(bytes.TrimSuffix(good, []byte("\n")))
	f.Add([]byte("momonga-app-signature 1\nkey ed25519:\nsha256 x\nsize 0\nsignature \n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		s, err := ParseAppSignature(b)
		if err != nil {
			if ErrorCode(err) != CodeBadRequest {
				t.Fatalf("parse error without its code: %v", err)
			}
			return
		}
		if !bytes.Equal(bytes.TrimSuffix(b, []byte("\n")), bytes.TrimSuffix(s.Encode(), []byte("\n"))) {
			t.Fatalf("accepted a manifest that is not in canonical form:\n%q\n%q", b, s.Encode())
		}
		// Verifying never panics, whatever was parsed.
		_ = s.Verify(key.Public().(ed25519.PublicKey), []byte("module"))
	})
}

func TestOutputsAgree(t *testing.T) {
	tol := Tolerance{Abs: 1e-9, Rel: 1e-6}
	cases := []struct {
		a, b  string
		tol   Tolerance
		agree bool
	}{
		{"x 1.0\n", "x 1.0\n", Tolerance{}, true},
		{"x 1.0\n", "x 1.0000001\n", Tolerance{}, false},
		{"x 1.0\n", "x 1.0000001\n", tol, true},
		{"x 1.0\n", "x 1.01\n", tol, false},
		{"x 1.0\n", "y 1.0\n", tol, false},
		{"1 2 3", "1 2", tol, false},
		{"0.0", "1e-10", tol, true},
		{"NaN", "nan", tol, true},
		{"NaN", "1", tol, false},
		{"+Inf", "Inf", tol, true},
		{"Inf", "-Inf", tol, false},
		{"1e308", "1.0000001e308", tol, true},
		{"a  1\tb", "a 1\n b", tol, true},
	}
	for _, c := range cases {
		if got := OutputsAgree([]byte(c.a), []byte(c.b), c.tol); got != c.agree {
			t.Errorf("OutputsAgree(%q, %q, %+v) = %v", c.a, c.b, c.tol, got)
		}
	}
	for _, bad := range []Tolerance{{Abs: -1}, {Rel: 2}, {Abs: math.Inf(1)}, {Rel: math.NaN()}} {
		if bad.Validate() == nil {
			t.Errorf("tolerance %+v accepted", bad)
		}
	}
}

func FuzzOutputsAgree(f *testing.F) {
	f.Add([]byte("1.5 x 3"), []byte("1.5000001 x 3"), 1e-9, 1e-6)
	f.Fuzz(func(t *testing.T, a, b []byte, abs, rel float64) {
		tol := Tolerance{Abs: abs, Rel: rel}
		if tol.Validate() != nil {
			return
		}
		if OutputsAgree(a, b, tol) != OutputsAgree(b, a, tol) {
			t.Fatalf("not symmetric: %q %q %+v", a, b, tol)
		}
		if !OutputsAgree(a, a, tol) {
			t.Fatalf("%q does not agree with itself", a)
		}
	})
}

func TestAccountMessages(t *testing.T) {
	nkey := "U" + strings.Repeat("A", 55)
	cases := []struct {
		name string
		err  error
	}{
		{"short key", decodeErr[AttachRequest]([]byte(`{"account_key":"short","nkey":"` + nkey + `"}`))},
		{"bad nkey", decodeErr[AttachRequest]([]byte(`{"account_key":"0123456789abcdef","nkey":"Nxx"}`))},
		{"user bad email", decodeErr[UserAdd]([]byte(`{"name":"ann","email":"a b@c","key_hash":"` + string(HashOf(nil)) + `"}`))},
		{"user no key", decodeErr[UserAdd]([]byte(`{"name":"ann"}`))},
		{"team bad name", decodeErr[TeamAdd]([]byte(`{"name":"a/b"}`))},
		{"revoke dotted host", decodeErr[HostRevoke]([]byte(`{"host":"a.b"}`))},
		{"compare same hashes", decodeErr[Compare]([]byte(`{"unit":"wu1","a":"` + string(HashOf(nil)) + `","b":"` + string(HashOf(nil)) + `"}`))},
		{"policy quorum over replication", decodeErr[AddApp]([]byte(`{"name":"a","hash":"` + string(HashOf(nil)) + `","size":1,"policy":{"replication":1,"quorum":2}}`))},
	}
	for _, c := range cases {
		if c.err == nil || ErrorCode(c.err) != CodeBadRequest {
			t.Errorf("%s: %v", c.name, c.err)
		}
	}
	if _, err := Decode[AttachRequest]([]byte(`{"v":1,"account_key":"0123456789abcdef","nkey":"` + nkey + `","host":{"name":"h"}}`)); err != nil {
		t.Fatal(err)
	}
	if AccountKeyHash("k1") == AccountKeyHash("k2") || AccountKeyHash("k1") == HashOf([]byte("k1")) {
		t.Fatal("account key hashes collide or are plain sha-256")
	}
}

func FuzzDecodeAttachRequest(f *testing.F) {
	fuzzDecoder[AttachRequest](f, `{"v":1,"account_key":"0123456789abcdef","nkey":"U`+strings.Repeat("A", 55)+`","host":{"name":"h","cpus":2}}`)
}
func FuzzDecodeAttach(f *testing.F) {
	fuzzDecoder[Attach](f, `{"v":1,"key_hash":"`+string(HashOf(nil))+`","nkey":"U`+strings.Repeat("B", 55)+`"}`)
}
func FuzzDecodeUserAdd(f *testing.F) {
	fuzzDecoder[UserAdd](f, `{"v":1,"name":"ann","email":"ann@example.org","key_hash":"`+string(HashOf(nil))+`","team":"t"}`)
}
func FuzzDecodeTeamAdd(f *testing.F) {
	fuzzDecoder[TeamAdd](f, `{"v":1,"name":"team","founder":"ann"}`)
}
func FuzzDecodeTeamJoin(f *testing.F)   { fuzzDecoder[TeamJoin](f, `{"v":1,"user":"ann","team":"team"}`) }
func FuzzDecodeHostRevoke(f *testing.F) { fuzzDecoder[HostRevoke](f, `{"v":1,"host":"h1"}`) }
func FuzzDecodeCompare(f *testing.F) {
	fuzzDecoder[Compare](f, `{"v":1,"unit":"wu1","a":"`+string(HashOf(nil))+`","b":"`+string(HashOf([]byte("x")))+`","agree":true}`)
}
func FuzzDecodeAddApp(f *testing.F) {
	fuzzDecoder[AddApp](f, `{"v":1,"name":"primes","hash":"`+string(HashOf(nil))+`","size":3,"signature":"x","policy":{"replication":2,"quorum":2,"adaptive":true,"tolerance":{"rel":1e-9}}}`,
		`{"v":1,"name":"primes","hash":"`+string(HashOf(nil))+`","size":3,"code_sigs":[{"file":"module","md5":"`+testMD5+`","signature":"0a1b\n.\n"},{"file":"x86_64-pc-linux-gnu","md5":"`+testMD5+`","signature":"ff\n.\n"}]}`)
}

const testMD5 = "d41d8cd98f00b204e9800998ecf8427e"

func TestAddAppCodeSignatures(t *testing.T) {
	app := func(sigs string) []byte {
		return []byte(`{"v":1,"name":"primes","hash":"` + string(HashOf(nil)) + `","size":3,"code_sigs":` + sigs + `}`)
	}
	sig := func(file, md5, text string) string {
		return `{"file":"` + file + `","md5":"` + md5 + `","signature":"` + text + `"}`
	}
	module := sig("module", testMD5, `0a1b\n.\n`)
	got, err := Decode[AddApp](app(`[` + module + `,` + sig("windows_x86_64", testMD5, `ff\n.\n`) + `]`))
	if err != nil {
		t.Fatal(err)
	}
	if len(got.CodeSigs) != 2 || got.CodeSigs[1].File != "windows_x86_64" || got.CodeSigs[0].Signature != "0a1b\n.\n" {
		t.Fatalf("decoded %+v", got.CodeSigs)
	}
	// An entry written before code signatures decodes with none.
	if old, err := Decode[AddApp]([]byte(`{"v":1,"name":"primes","hash":"` + string(HashOf(nil)) + `","size":3}`)); err != nil || old.CodeSigs != nil {
		t.Fatalf("an entry without code signatures: %+v, %v", old, err)
	}
	for name, sigs := range map[string]string{
		"no module":         `[` + sig("x86_64-pc-linux-gnu", testMD5, `ff`) + `]`,
		"a file twice":      `[` + module + `,` + module + `]`,
		"upper-case md5":    `[` + sig("module", strings.ToUpper(testMD5), `ff`) + `]`,
		"short md5":         `[` + sig("module", testMD5[:31], `ff`) + `]`,
		"not hex":           `[` + sig("module", testMD5, `<xml>`) + `]`,
		"empty signature":   `[` + sig("module", testMD5, ``) + `]`,
		"long signature":    `[` + sig("module", testMD5, strings.Repeat("ab", MaxCodeSignatureBytes)) + `]`,
		"platform with '/'": `[` + module + `,` + sig("a/b", testMD5, `ff`) + `]`,
		"too many":          `[` + module + strings.Repeat(`,`+module, MaxCodeSignatures) + `]`,
	} {
		if err := decodeErr[AddApp](app(sigs)); ErrorCode(err) != CodeBadRequest {
			t.Errorf("%s: %v", name, err)
		}
	}
}
func FuzzDecodeResultsQuery(f *testing.F) {
	fuzzDecoder[ResultsQuery](f, `{"v":1,"batch":"b","offset":2}`)
}

func FuzzParsePublicKey(f *testing.F) {
	f.Add(FormatPublicKey(testKey(4).Public().(ed25519.PublicKey)))
	f.Fuzz(func(t *testing.T, s string) {
		k, err := ParsePublicKey(s)
		if err != nil {
			return
		}
		if again, err := ParsePublicKey(FormatPublicKey(k)); err != nil || !again.Equal(k) {
			t.Fatalf("round trip of %q: %v", s, err)
		}
	})
}
