package workunits

import (
	"encoding/json"
	"strings"
	"testing"
	"time"
)

func TestDecodeRejectsBadMessages(t *testing.T) {
	cases := []struct {
		name string
		err  error
		code string
	}{
		{"oversized", decodeErr[WorkRequest]([]byte(`{"seq":1,"slots":1,"pad":"` + strings.Repeat("x", MaxMessageBytes) + `"}`)), CodeTooLarge},
		{"not json", decodeErr[WorkRequest]([]byte("\x00\x01")), CodeBadRequest},
		{"wrong type", decodeErr[WorkRequest]([]byte(`{"seq":"one","slots":1}`)), CodeBadRequest},
		{"no seq", decodeErr[WorkRequest]([]byte(`{"slots":1}`)), CodeBadRequest},
		{"too many slots", decodeErr[WorkRequest]([]byte(`{"seq":1,"slots":100000}`)), CodeBadRequest},
		{"report bad hash", decodeErr[Report]([]byte(`{"seq":1,"task":"t","outcome":"success","output":"abc"}`)), CodeBadRequest},
		{"report unknown outcome", decodeErr[Report]([]byte(`{"seq":1,"task":"t","outcome":"maybe"}`)), CodeBadRequest},
		{"submit no units", decodeErr[Submit]([]byte(`{"batch":"b","app":"a","units":[]}`)), CodeBadRequest},
		{"submit bad batch name", decodeErr[Submit]([]byte(`{"batch":"../x","app":"a","units":[{}]}`)), CodeBadRequest},
		{"submit quorum over replication", decodeErr[Submit]([]byte(`{"batch":"b","app":"a","replication":1,"quorum":2,"units":[{}]}`)), CodeBadRequest},
		{"hello negative cpus", decodeErr[Hello]([]byte(`{"host":{"cpus":-1}}`)), CodeBadRequest},
	}
	for _, c := range cases {
		if c.err == nil || ErrorCode(c.err) != c.code {
			t.Errorf("%s: got %v, want code %s", c.name, c.err, c.code)
		}
	}
	// Unknown fields are read past: encodings only grow.
	r, err := Decode[WorkRequest]([]byte(`{"v":9,"seq":3,"slots":2,"future":{"x":1}}`))
	if err != nil || r.Seq != 3 || r.Slots != 2 {
		t.Fatalf("newer message: %+v %v", r, err)
	}
}

func decodeErr[T any, P interface {
	*T
	Validate() error
}](b []byte) error {
	_, err := Decode[T, P](b)
	return err
}

func TestSubjects(t *testing.T) {
	h, op, ok := ParseVolunteerSubject(VolunteerSubject("h1", OpBlobGet))
	if !ok || h != "h1" || op != OpBlobGet {
		t.Fatalf("round trip: %q %q %v", h, op, ok)
	}
	for _, s := range []string{"vol.", "vol.h1", "vol..work", "adm.cmd", "vol.h*.work", "vol.h>.work"} {
		if _, _, ok := ParseVolunteerSubject(s); ok {
			t.Errorf("%q parsed", s)
		}
	}
	e := ParseHeaderError(HeaderErrorValue(Errorf(CodeNotFound, "no blob\nabc")))
	if e.Code != CodeNotFound || e.Message != "no blob abc" {
		t.Fatalf("header error round trip: %+v", e)
	}
}

// fuzzDecoder checks that a decoder never panics and that whatever it
// accepts survives a round trip through Encode.
func fuzzDecoder[T any, P interface {
	*T
	Validate() error
}](f *testing.F, seeds ...string) {
	for _, s := range seeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		v, err := Decode[T, P](b)
		if err != nil {
			if ErrorCode(err) == CodeInternal {
				t.Fatalf("decode error without a code: %v", err)
			}
			return
		}
		again, err := Decode[T, P](Encode(v))
		if err != nil {
			t.Fatalf("re-decode of accepted message: %v", err)
		}
		a, _ := json.Marshal(v)
		c, _ := json.Marshal(again)
		if string(a) != string(c) {
			t.Fatalf("round trip changed the message:\n%s\n%s", a, c)
		}
	})
}

func FuzzDecodeHello(f *testing.F) {
	fuzzDecoder[Hello](f, `{"v":1,"host":{"name":"h","cpus":2}}`)
}
func FuzzDecodeWorkRequest(f *testing.F) { fuzzDecoder[WorkRequest](f, `{"v":1,"seq":1,"slots":2}`) }
func FuzzDecodeBeat(f *testing.F) {
	fuzzDecoder[Beat](f, `{"v":1,"seq":4,"tasks":[{"task":"wu1_0","fraction":0.5}]}`)
}
func FuzzDecodeReport(f *testing.F) {
	fuzzDecoder[Report](f, `{"v":1,"seq":2,"task":"wu1_0","outcome":"success","output":"`+string(HashOf(nil))+`","output_size":0}`)
}
func FuzzDecodeSubmit(f *testing.F) {
	fuzzDecoder[Submit](f, `{"v":1,"batch":"b","app":"primes","replication":2,"quorum":2,"units":[{"args":["0","10"]}]}`)
}
func FuzzDecodeCommand(f *testing.F) {
	fuzzDecoder[Command](f, `{"v":1,"op":"work","host":"h","seq":1,"body":{"seq":1,"slots":1}}`)
}

// TestReconnectSpreadFollowsTheHosts: none for a small project, the hosts
// at ReconnectRate a second for a large one, bounded.
func TestReconnectSpreadFollowsTheHosts(t *testing.T) {
	for _, c := range []struct {
		hosts int
		want  time.Duration
	}{{0, 0}, {300, 0}, {400, time.Second}, {10_000, 25 * time.Second}, {1_000_000, MaxReconnectSpread}} {
		if got := ReconnectSpread(c.hosts); got != c.want {
			t.Errorf("%d hosts: spread %v, want %v", c.hosts, got, c.want)
		}
	}
}
