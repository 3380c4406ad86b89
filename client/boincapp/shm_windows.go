package boincapp

import (
	"errors"
	"fmt"
	"syscall"
	"unsafe"
)

var (
	kernel32         = syscall.NewLazyDLL("kernel32.dll")
	procOpenMapping  = kernel32.NewProc("OpenFileMappingW")
	procMapView      = kernel32.NewProc("MapViewOfFile")
	procUnmapView    = kernel32.NewProc("UnmapViewOfFile")
	errNoCommObjName = errors.New("init_data.xml names no shared memory (comm_obj_name)")
)

const fileMapAllAccess = 0xF001F

// attach opens the file mapping the client made, "shm_" and the name
// init_data.xml gives, in the Global namespace if it is there
// (attach_shmem in lib/shmem.cpp).
func attach(_ string, d InitData) ([]byte, func() error, error) {
	if d.CommObjName == "" {
		return nil, nil, errNoCommObjName
	}
	name := "shm_" + d.CommObjName
	var h uintptr
	for _, n := range []string{`Global\` + name, name} {
		p, err := syscall.UTF16PtrFromString(n)
		if err != nil {
			return nil, nil, err
		}
		if h, _, _ = procOpenMapping.Call(fileMapAllAccess, 0, uintptr(unsafe.Pointer(p))); h != 0 {
			break
		}
	}
	if h == 0 {
		return nil, nil, fmt.Errorf("no shared memory named %s", name)
	}
	addr, _, err := procMapView.Call(h, fileMapAllAccess, 0, 0, 0)
	if addr == 0 {
		syscall.CloseHandle(syscall.Handle(h))
		return nil, nil, fmt.Errorf("map %s: %w", name, err)
	}
	// The view is memory Windows owns, outside Go's heap: its address
	// comes back as a uintptr.
	mem := unsafe.Slice((*byte)(*(*unsafe.Pointer)(unsafe.Pointer(&addr))), shmSize)
	return mem, func() error {
		procUnmapView.Call(addr)
		return syscall.CloseHandle(syscall.Handle(h))
	}, nil
}
