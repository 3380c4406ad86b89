// Package project is the scientist's side of momonga (DESIGN §1-§4, §8-§9).
// Its subpackages: sched, the scheduler state machine; server, the process
// that embeds NATS and runs the scheduler, gateway and stats page; blobs, the
// content-addressed blob store; admin, the client of the project's own tools;
// stats, the public stats page; auth, who may connect and what they may send
// (operator, accounts, auth callout, rate limits); credit, Cobblestones and
// recent average credit; signing, the app-signing key; validator, the
// comparison of outputs with a tolerance; bench, measurements.
package project
