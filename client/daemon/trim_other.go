//go:build !linux

package daemon

import "runtime/debug"

// trimResident gives the free heap back to the system.
func trimResident() { debug.FreeOSMemory() }
