// Package client is the volunteer side of momonga (DESIGN §7). Its
// subpackages are the daemon (registration, work fetch, heartbeats, reports)
// and the runner (the wazero sandbox, one worker process per task). Host
// measurement, idle detection, preferences and the local control API will
// live beside them.
package client
