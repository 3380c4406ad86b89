package jetlog

import "testing"

func TestStreamSeq(t *testing.T) {
	for subject, want := range map[string]uint64{
		"$JS.ACK.S.C.1.42.7.1700000000000000000.0":                 42,
		"$JS.ACK._.ACCHASH.S.C.1.43.7.1700000000000000000.0.token": 43,
		"$JS.ACK.dom.ACCHASH.S.C.2.44.8.1700000000000000000.3":     44,
		"$JS.ACK.S.C.1.x.7.1700000000000000000.0":                  0,
		"$JS.ACK.S.C.1.42.7.1700000000000000000":                   0,
		"$JS.ACK.S.C.1.42.7.1700000000000000000.0.1":               0,
		"_INBOX.abc": 0,
		"":           0,
	} {
		got, ok := streamSeq(subject)
		if got != want || ok != (want != 0) {
			t.Errorf("%q: %d %v, want %d", subject, got, ok, want)
		}
	}
}
