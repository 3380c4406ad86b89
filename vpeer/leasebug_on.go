//go:build momonga_leasebug

package vpeer

// keepsExpiredLease plants a bug for the network-fault tests (e2e): a
// lease holder that goes on acting on its lease however long ago it
// renewed it, as if cut off holders never noticed. Built only with
// -tags momonga_leasebug, to show that the tests catch two holders
// overlapping; never in a shipped binary.
const keepsExpiredLease = true
