//go:build unix

package boincapp

import (
	"fmt"
	"os"
	"path/filepath"
	"syscall"
)

// attach maps the slot's boinc_mmap_file, which the client made
// (attach_shmem_mmap in lib/shmem.cpp).
func attach(dir string, _ InitData) ([]byte, func() error, error) {
	f, err := os.OpenFile(filepath.Join(dir, MmapFile), os.O_RDWR, 0)
	if err != nil {
		return nil, nil, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, nil, err
	}
	if st.Size() < shmSize {
		return nil, nil, fmt.Errorf("%s has %d bytes, want %d", MmapFile, st.Size(), shmSize)
	}
	mem, err := syscall.Mmap(int(f.Fd()), 0, shmSize, syscall.PROT_READ|syscall.PROT_WRITE, syscall.MAP_SHARED)
	if err != nil {
		return nil, nil, fmt.Errorf("mmap %s: %w", MmapFile, err)
	}
	return mem, func() error { return syscall.Munmap(mem) }, nil
}
