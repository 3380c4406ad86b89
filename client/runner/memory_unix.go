//go:build unix

package runner

import "golang.org/x/sys/unix"

// reserveLinear reserves a linear memory of size bytes outside the Go heap:
// an anonymous mapping whose pages the kernel gives, zeroed, on first touch.
// Off the heap, the memory costs the garbage collector nothing, a warm
// worker's next task does not wait for the runtime to zero a reused span of
// hundreds of MiB, and freeLinear gives it straight back to the system.
func reserveLinear(size uint64) []byte {
	if size == 0 {
		return []byte{}
	}
	b, err := unix.Mmap(-1, 0, int(size), unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANON|unix.MAP_NORESERVE)
	if err != nil {
		return make([]byte, 0, size) // the heap, as a last resort
	}
	adviseHugePages(b)
	return b[:0]
}

func freeLinear(b []byte) {
	if cap(b) > 0 {
		_ = unix.Munmap(b[:cap(b)])
	}
}
