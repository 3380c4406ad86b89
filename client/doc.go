// Package client is the volunteer side of momonga (DESIGN §7). Its
// subpackages are the daemon (projects, work fetch, the decision loop,
// heartbeats, reports, state), the runner (the wazero sandbox, one worker
// process per task), host (measurement and benchmarks), idle (idle
// detection and the rules that apply the preferences to it), prefs (the
// volunteer's preferences), plan (the local scheduler: slots, resource
// shares, work fetch) and control (the local API the command line uses).
package client
