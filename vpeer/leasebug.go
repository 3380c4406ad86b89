package vpeer

// keepsExpiredLease plants a bug for the tests that must catch it: a lease
// holder that goes on acting on its lease however long ago it last renewed
// it, as if a holder cut off from the registry never noticed. It is false
// in every shipped build. vpeer's tests set it (PlantLeaseBug, in
// export_test.go), and so does a build with -tags momonga_leasebug
// (leasebug_on.go), which only the end-to-end tests make, for servers of
// their own.
var keepsExpiredLease = false
