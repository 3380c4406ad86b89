//go:build !unix

package runner

// reserveLinear reserves a linear memory on the Go heap, where there is no
// portable way to map memory.
func reserveLinear(size uint64) []byte { return make([]byte, 0, size) }

func freeLinear([]byte) {}
