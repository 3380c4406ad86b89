package vpeer

import "testing"

// PlantLeaseBug makes lease holders keep acting on expired leases until t
// ends (keepsExpiredLease), to show that the tests catch it.
func PlantLeaseBug(t testing.TB) {
	keepsExpiredLease = true
	t.Cleanup(func() { keepsExpiredLease = false })
}
