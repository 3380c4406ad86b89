package server

import "net"

// InProcessConn opens a connection to the embedded NATS server that does not
// go through a socket. It makes a Server a nats.InProcessConnProvider, so
// tools in the same process connect with nats.InProcessServer(srv).
func (s *Server) InProcessConn() (net.Conn, error) { return s.ns.InProcessConn() }
