// Package project is the scientist's side of momonga (DESIGN §1-§4, §8-§9).
// Its subpackages: sched, the scheduler state machine; server, the process
// that embeds NATS and runs the scheduler, gateway and stats page; blobs, the
// content-addressed blob store; admin, the client of the project's own tools;
// stats, the public stats page.
package project
