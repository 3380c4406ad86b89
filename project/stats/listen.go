package stats

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"
)

// Server serves the stats pages over HTTP.
type Server struct {
	http *http.Server
	ln   net.Listener
}

// Listen serves h on addr (host:port; port 0 picks a free one) until Close.
func Listen(addr string, h http.Handler, logger *slog.Logger) (*Server, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("stats page on %s: %w", addr, err)
	}
	s := &Server{http: &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}, ln: ln}
	go func() {
		if err := s.http.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			logger.Error("stats page", "err", err)
		}
	}()
	return s, nil
}

// URL is the address of the pages, or "" for a nil Server.
func (s *Server) URL() string {
	if s == nil {
		return ""
	}
	return "http://" + s.ln.Addr().String() + "/"
}

// Close stops serving, giving requests under way two seconds to finish. A
// nil Server does nothing.
func (s *Server) Close() {
	if s == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	_ = s.http.Shutdown(ctx)
}
