//go:build race

package release

// raceBuild is true when the tests run with the race detector, which makes
// compressing the packages' binaries in this process ten times slower: the
// release build's tests then skip, and .ci/run runs them without it.
const raceBuild = true
