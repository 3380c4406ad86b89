//go:build !momonga_leasebug

package vpeer

// keepsExpiredLease is false in every build but the fault tests' own: see
// leasebug_on.go.
const keepsExpiredLease = false
