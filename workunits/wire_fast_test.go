package workunits

import (
	"encoding/json"
	"math"
	"reflect"
	"strings"
	"testing"
	"time"
)

var hotSeeds = []string{
	`{"v":1,"op":"work","host":"h12","seq":7,"body":{"v":1,"seq":7,"slots":1}}`,
	`{"v":1,"op":"beat","host":"h1","seq":3,"body":{"v":1,"seq":3,"tasks":[{"task":"wu1_0","fraction":0.25,"cpu_seconds":12.5}]}}`,
	` { "v" : 1 , "op" : "result" , "body" : [1, -2.5e-3, "x\u00e9\n", true, false, null, {}, []] } `,
	`{"v":1,"seq":7,"slots":2}`,
	`{"v":1,"seq":7,"slots":2,"cache":["` + string(HashOf(nil)) + `","` + string(HashOf([]byte("x"))) + `"]}`,
	`{"v":1,"seq":7,"slots":2,"held":["wu1_0","wu2_1"],"held_all":true}`,
	`{"v":1,"seq":4,"tasks":[]}`,
	`{"v":1,"seq":4,"tasks":[{"task":"wu1_0","fraction":1e-7},{"task":"wu2_1","cpu_seconds":-0}]}`,
	`{"v":1,"seq":2,"task":"wu1_0","outcome":"success","output":"` + string(HashOf(nil)) + `","output_size":0,"exit_code":-3,"reason":"ok","cpu_seconds":3.25}`,
	`{"v":1,"seq":2,"task":"wu1_0","outcome":"failure","reason":"killed"}`,
	`{"v":1,"assignments":[{"task":"wu1_0","work_unit":"wu1","app":"primes","app_hash":"` + string(HashOf(nil)) + `","app_size":5,"app_sig":"c2ln","args":["0","10"],"stdin":"` + string(HashOf([]byte("x"))) + `","limits":{"memory_bytes":1048576,"output_bytes":1024,"max_seconds":3600.5},"deadline":"2026-12-07T09:00:00.123456789Z","fpops":1e12,"checkpoint":{"hash":"` + string(HashOf(nil)) + `","size":10,"seq":3,"base":"` + string(HashOf(nil)) + `","base_size":20,"progress":0.5,"cpu_seconds":1.5},"checkpoint_seconds":60}]}`,
	`{"v":1,"assignments":[{"task":"a","work_unit":"b","app":"c","app_hash":"d","app_size":0,"limits":{},"deadline":"2026-12-07T10:00:00+09:30"},{"task":"e","work_unit":"f","app":"g","app_hash":"h","app_size":1,"limits":{},"deadline":"0001-01-01T00:00:00Z"}]}`,
	`{"v":1,"retry_seconds":30}`,
	`{"v":1,"assignments":[{"task":"a","work_unit":"b","app":"c","app_hash":"d","app_size":0,"app_sig":"momonga app\nkey x\n\"q\" \u00e9 \ud83d\ude00 \ud800 ÿ","args":["\t","cafÃ©"],"limits":{},"deadline":"2026-12-07T10:00:00Z"}]}`,
	`{"v":1,"assignments":[{"task":"a","work_unit":"b","app":"c","app_hash":"d","app_size":0,"args":["C:\\","\\\"q\\"],"limits":{},"deadline":"2026-12-07T10:00:00Z"}]}`,
	// Left to encoding/json.
	`{"v":1,"error":{"code":"not_found","message":"no such host"},"retry_seconds":30}`,
	`{"v":1,"assignments":[{"task":"a","deadline":"yesterday"}]}`,
	`{"v":1,"assignments":[{"task":"a","checkpoint":null}]}`,
	`{"v":1,"assignments":null}`,
	`{"V":1,"Op":"work"}`,
	`{"v":1,"op":"work","op":"beat"}`,
	`{"v":1,"op":"w\u00f6rk"}`,
	`{"v":1,"op":"work","body":null}`,
	`{"v":1.5,"seq":1,"slots":1}`,
	`{"v":1,"seq":-1,"slots":1}`,
	`{"v":1,"seq":99999999999999999999,"slots":1}`,
	`{"v":1,"seq":1,"slots":1,"future":{"x":1}}`,
	`{"v":1,"seq":1,"slots":1,"cache":null}`,
	`{"v":1,"seq":1,"slots":1,"cache":["short"]}`,
	`{"v":1,"seq":1,"slots":1,"cache":[]}`,
	`{"v":1,"seq":1,"slots":1`,
	`{"v":1,"seq":1,"slots":1}x`,
	`{"v":1,"seq":1,"slots":1,}`,
	`{"v":01,"seq":1,"slots":1}`,
	`{"v":1,"seq":1,"tasks":[{"task":"a","fraction":1e999}]}`,
	`null`,
	``,
}

// sameAsJSON checks that decodeFast, when it decodes b into a T, gets what
// encoding/json gets.
func sameAsJSON[T any](t *testing.T, b []byte) {
	var fast T
	if ok, _ := decodeFast(b, &fast); !ok {
		return
	}
	var slow T
	if err := json.Unmarshal(b, &slow); err != nil {
		t.Fatalf("%T: fast decoding accepted %q, encoding/json refuses it: %v", fast, b, err)
	}
	if !reflect.DeepEqual(fast, slow) {
		t.Fatalf("%T from %q:\nfast %#v\njson %#v", fast, b, fast, slow)
	}
}

func checkDecodeFast(t *testing.T, b []byte) {
	sameAsJSON[Command](t, b)
	sameAsJSON[WorkRequest](t, b)
	sameAsJSON[Beat](t, b)
	sameAsJSON[Report](t, b)
	sameAsJSON[WorkReply](t, b)
	var c Command
	if ok, _ := decodeFast(b, &c); ok && len(c.Body) > 0 {
		sameAsJSON[WorkRequest](t, c.Body)
		sameAsJSON[Beat](t, c.Body)
		sameAsJSON[Report](t, c.Body)
	}
}

func TestDecodeFast(t *testing.T) {
	for _, s := range hotSeeds {
		checkDecodeFast(t, []byte(s))
	}
	// The messages momonga writes take the fast path.
	for _, s := range hotSeeds[:15] {
		var ok bool
		for _, v := range []any{&Command{}, &WorkRequest{}, &Beat{}, &Report{}, &WorkReply{}} {
			fast, _ := decodeFast([]byte(s), v)
			ok = ok || fast
		}
		if !ok {
			t.Errorf("%s: not decoded by hand", s)
		}
	}
	cmd, err := Decode[Command]([]byte(hotSeeds[0]))
	if err != nil || cmd.Op != OpWork || cmd.Host != "h12" || cmd.Seq != 7 || string(cmd.Body) != `{"v":1,"seq":7,"slots":1}` {
		t.Fatalf("command: %+v %v", cmd, err)
	}
	// A message left to encoding/json half read decodes from scratch.
	r, err := Decode[WorkRequest]([]byte(`{"seq":3,"slots":2,"v":"x"}`))
	if err == nil {
		t.Fatalf("decoded %+v", r)
	}
	r, err = Decode[WorkRequest]([]byte(`{"seq":3,"slots":2,"Slots":4}`))
	if err != nil || r.Slots != 4 {
		t.Fatalf("got %+v %v, want encoding/json's reading", r, err)
	}
}

// FuzzDecodeFast checks that the hand-written decoders agree with
// encoding/json on whatever they accept.
func FuzzDecodeFast(f *testing.F) {
	for _, s := range hotSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) { checkDecodeFast(t, b) })
}

func sameEncoding(t *testing.T, v any) {
	t.Helper()
	want, werr := json.Marshal(v)
	got, ok := encodeFast(v)
	if werr != nil {
		if ok {
			t.Fatalf("%#v: written by hand as %s; json.Marshal: %v", v, got, werr)
		}
		return
	}
	if !ok {
		t.Fatalf("%#v: not written by hand", v)
	}
	if string(got) != string(want) {
		t.Fatalf("%#v:\nfast %s\njson %s", v, got, want)
	}
}

func checkEncodeFast(t *testing.T, s string, f float64, n int64, sec int64, nsec int64, zone int) {
	loc := time.FixedZone("z", zone)
	a := Assignment{
		Task: s, WorkUnit: "wu1", App: s + "<&>", AppHash: Hash(s), AppSize: n, AppSig: s,
		Args: []string{s, "", "a\u2028b"}, Stdin: Hash(s), Limits: Limits{MemoryBytes: n, OutputBytes: -n, MaxSeconds: f},
		Deadline: time.Unix(sec, nsec).In(loc), FPOps: f * 1e20,
		Checkpoint:        &CheckpointRef{Hash: Hash(s), Size: n, Seq: uint64(n), Base: Hash(s), BaseSize: n, Progress: f, CPUSeconds: -f},
		CheckpointSeconds: f / 1e10,
	}
	e := &Error{Code: s, Message: s + "\x00\t\xff"}
	for _, v := range []any{
		&WorkReply{V: int(n), Assignments: []Assignment{a, {Deadline: a.Deadline}}, RetrySeconds: f},
		WorkReply{V: 1, Error: e},
		&WorkReply{},
		&Ack{V: 1, Error: e},
		Ack{V: int(n)},
		&BeatReply{V: 1, Abort: []string{s, s}},
		BeatReply{V: 1, Error: e},
		&Command{V: int(n), Op: s, Host: s, Seq: uint64(n), Body: json.RawMessage(`{"v":1,"seq":7,"slots":1}`)},
		Command{V: 1, Op: OpWork},
	} {
		sameEncoding(t, v)
	}
	// A command whose body json.Marshal would change is left to it.
	for _, body := range []string{s, `["` + s + `"]`, `{ "a" : [1, 2] }`, "[\"a\u2028<b>&\"]", `{"a":1`} {
		v := &Command{V: 1, Op: OpWork, Body: json.RawMessage(body)}
		want, werr := json.Marshal(v)
		if got, ok := encodeFast(v); ok && (werr != nil || string(got) != string(want)) {
			t.Fatalf("%q: written by hand as %s; json.Marshal: %s %v", body, got, want, werr)
		}
	}
}

func TestEncodeFast(t *testing.T) {
	for _, s := range []string{"", "wu1_0", `"quoted" \ back`, "tab\tnl\nbs\b<script>&", "\u00e9\u2028\u2029\U0001F600", "bad \xc3\x28 \xff utf8", "\x7f\x1f"} {
		for _, f := range []float64{0, math.Copysign(0, -1), 1, -2.5, 1e-7, 123456789e-15, 1e21, 1e20, 3.0000001, math.MaxFloat64, math.SmallestNonzeroFloat64, math.NaN(), math.Inf(1)} {
			checkEncodeFast(t, s, f, -42, 1_700_000_000, 123_456_789, 3600)
		}
	}
	checkEncodeFast(t, "x", 1, 1, 0, 0, 0)
	checkEncodeFast(t, "x", 1, math.MaxInt64, -70_000_000_000, 1, -5*3600-30*60)
	checkEncodeFast(t, "x", 1, math.MinInt64, 300_000_000_000, 999_999_999, 25*3600)
	if b := Encode((*WorkReply)(nil)); string(b) != "null" {
		t.Fatalf("nil reply: %s", b)
	}
}

// FuzzEncodeFast checks that the hand-written encoders write what
// json.Marshal writes.
func FuzzEncodeFast(f *testing.F) {
	f.Add("wu1_0", 0.5, int64(7), int64(1_700_000_000), int64(5), 0)
	f.Add("<\xff\u2028>", 1e-9, int64(-1), int64(-62_135_596_801), int64(0), 3600)
	f.Fuzz(func(t *testing.T, s string, fl float64, n, sec, nsec int64, zone int) {
		checkEncodeFast(t, s, fl, n, sec, nsec, zone%(48*3600))
	})
}

var (
	benchCommand = []byte(`{"v":1,"op":"work","host":"h123","seq":42,"body":{"v":1,"seq":42,"slots":1}}`)
	benchReply   = &WorkReply{V: 1, Assignments: []Assignment{{
		Task: "wu12345_0", WorkUnit: "wu12345", App: "bench", AppHash: HashOf([]byte("bench")), AppSize: 5,
		Args: []string{"12344"}, Limits: Limits{MemoryBytes: DefaultMemoryBytes, OutputBytes: DefaultOutputBytes, MaxSeconds: DefaultMaxSeconds},
		Deadline: time.Date(2026, 11, 25, 18, 0, 0, 123456789, time.UTC),
	}}}
)

// BenchmarkDecodeCommand decodes a work request as the scheduler does: the
// command, then its body; json is encoding/json alone, for comparison.
func BenchmarkDecodeCommand(b *testing.B) {
	b.Run("fast", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			c, err := DecodeLimit[Command](benchCommand, MaxAdminMessageBytes)
			if err != nil {
				b.Fatal(err)
			}
			if _, err := DecodeLimit[WorkRequest](c.Body, MaxAdminMessageBytes); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("json", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			var c Command
			if err := json.Unmarshal(benchCommand, &c); err != nil {
				b.Fatal(err)
			}
			var w WorkRequest
			if err := json.Unmarshal(c.Body, &w); err != nil {
				b.Fatal(err)
			}
		}
	})
}

func BenchmarkEncodeWorkReply(b *testing.B) {
	b.Run("fast", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			Encode(benchReply)
		}
	})
	b.Run("json", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := json.Marshal(benchReply); err != nil {
				b.Fatal(err)
			}
		}
	})
}

func TestEncodeFastSize(t *testing.T) {
	// The buffer guess holds a typical reply without growing.
	b := Encode(benchReply)
	if len(b) > 64+320 {
		t.Errorf("a one-task reply takes %d bytes: raise the guess", len(b))
	}
	if !strings.HasPrefix(string(b), `{"v":1,"assignments":[{"task":"wu12345_0"`) {
		t.Errorf("reply %s", b)
	}
}

// TestEncodeFastKnowsEveryField: the replies written by hand are kept in
// the replicated state, so a field added to one of these types and not to
// its hand-written encoder would be dropped without a word. checkEncodeFast
// sets every field these counts cover; a new field must be added there and
// to the encoder, and then to this table.
func TestEncodeFastKnowsEveryField(t *testing.T) {
	for _, c := range []struct {
		v      any
		fields int
	}{
		{WorkReply{}, 4}, {Assignment{}, 13}, {Limits{}, 3}, {CheckpointRef{}, 7},
		{Ack{}, 2}, {BeatReply{}, 3}, {Error{}, 2},
	} {
		if n := reflect.TypeOf(c.v).NumField(); n != c.fields {
			t.Errorf("%T has %d fields; its hand-written encoder and checkEncodeFast know %d", c.v, n, c.fields)
		}
	}
}

func TestDecodeReply(t *testing.T) {
	var rep WorkReply
	if err := DecodeReply(Encode(benchReply), &rep); err != nil || !reflect.DeepEqual(&rep, benchReply) {
		t.Fatalf("got %+v %v, want %+v", rep, err, benchReply)
	}
	// An error is left to encoding/json, and read.
	rep = WorkReply{}
	if err := DecodeReply(Encode(WorkReply{V: 1, Error: Errorf(CodeNotFound, "gone")}), &rep); err != nil || rep.Error == nil || rep.Error.Code != CodeNotFound {
		t.Fatalf("got %+v %v", rep, err)
	}
	var ack Ack
	if err := DecodeReply([]byte(`{"v":1,"error":{"code":"x","message":"y"}}`), &ack); err != nil || ack.Error.Message != "y" {
		t.Fatalf("got %+v %v", ack, err)
	}
	if err := DecodeReply([]byte(`{"v":1,"assignments":[`), &rep); err == nil {
		t.Fatalf("a cut reply decoded")
	}
}
