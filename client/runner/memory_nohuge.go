//go:build unix && !linux

package runner

// adviseHugePages does nothing where madvise has no huge-page advice
// (macOS and the BSDs, which promote pages by themselves or not at all).
func adviseHugePages([]byte) {}
