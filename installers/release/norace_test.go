//go:build !race

package release

const raceBuild = false
