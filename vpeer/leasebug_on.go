//go:build momonga_leasebug

package vpeer

// A build for the end-to-end tests that must catch the planted lease bug
// (see keepsExpiredLease); no shipped binary is built with this tag.
func init() { keepsExpiredLease = true }
