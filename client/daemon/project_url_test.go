package daemon

import "testing"

func TestProjectAddresses(t *testing.T) {
	for _, s := range []string{"nats://p.example.org:4222", "tls://p:4222", "nats://a:4222,nats://b:4222,tls://c:4222"} {
		if err := checkProjectURL(s); err != nil {
			t.Errorf("%q refused: %v", s, err)
		}
	}
	for _, s := range []string{"", "p.example.org:4222", "http://p:80", "nats://a:4222,", "nats://a:4222,http://b:80", "nats://a:4222, nats://b:4222"} {
		if err := checkProjectURL(s); err == nil {
			t.Errorf("%q accepted", s)
		}
	}
}
