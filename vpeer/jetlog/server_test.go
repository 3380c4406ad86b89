package jetlog_test

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/momonga-project/momonga/vpeer"
	"github.com/momonga-project/momonga/vpeer/jetlog"
)

// startServer starts a nats-server with JetStream keeping its data in dir.
// Port 0 makes it in-process only (no socket); -1 picks a free port.
func startServer(t testing.TB, dir string, port int) *server.Server {
	t.Helper()
	opts := &server.Options{
		Host:      "127.0.0.1",
		Port:      port,
		JetStream: true,
		StoreDir:  dir,
		NoLog:     true,
		NoSigs:    true,
	}
	if port == 0 {
		opts.DontListen = true
	}
	s, err := server.NewServer(opts)
	if err != nil {
		t.Fatalf("new server: %v", err)
	}
	go s.Start()
	if !s.ReadyForConnections(10 * time.Second) {
		s.Shutdown()
		t.Fatal("server not ready")
	}
	t.Cleanup(func() { stopServer(s) })
	return s
}

func stopServer(s *server.Server) {
	s.Shutdown()
	s.WaitForShutdown()
}

// connect connects to s, in process when s does not listen, and keeps
// reconnecting for as long as the test runs.
func connect(t testing.TB, s *server.Server) (*nats.Conn, jetstream.JetStream) {
	t.Helper()
	opts := []nats.Option{nats.MaxReconnects(-1), nats.ReconnectWait(20 * time.Millisecond)}
	url := s.ClientURL()
	if s.Addr() == nil {
		opts = append(opts, nats.InProcessServer(s))
		url = ""
	}
	nc, err := nats.Connect(url, opts...)
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatalf("jetstream: %v", err)
	}
	return nc, js
}

func open(t testing.TB, js jetstream.JetStream, cfg jetlog.Config) *jetlog.Log {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	l, err := jetlog.Open(ctx, js, cfg)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// logFactory returns a function giving a new stream on one in-process
// server at each call.
func logFactory(t *testing.T) func(*testing.T) vpeer.Log {
	s := startServer(t, t.TempDir(), 0)
	_, js := connect(t, s)
	var n atomic.Int64
	return func(t *testing.T) vpeer.Log {
		return open(t, js, jetlog.Config{Stream: fmt.Sprintf("T%d", n.Add(1))})
	}
}
