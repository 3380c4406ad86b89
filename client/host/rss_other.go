//go:build !linux

package host

// ResidentBytes is not measured on this platform: memory limits then hold
// by the tasks' declared bounds alone.
func ResidentBytes(int) (int64, bool) { return 0, false }
