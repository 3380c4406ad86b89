// Package e2e holds momonga's end-to-end tests. They build the real momonga
// and momonga-project binaries once, then run a project server and volunteer
// clients as separate processes on loopback, drive them with the project's
// command-line tools as a scientist would, and check what comes out: the
// results, the credit, and recovery when a server or a client is killed
// (STYLE.md: the integration tests that run the real binaries against each
// other).
//
// The tests run on Linux, where /proc shows the worker processes a client
// starts. On an idle two-core machine they take from under a second to about
// fifteen seconds each; `go test -short` skips them. Volunteers compute at
// the lowest CPU priority there is (SCHED_IDLE), so anything else that keeps
// the cores busy, such as other packages' tests run in parallel by
// `go test ./...`, slows these tests down by as much: run them on their own
// (`go test ./e2e/`) when timing matters.
package e2e
