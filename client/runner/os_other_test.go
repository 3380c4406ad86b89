//go:build !linux

package runner

func ioprioClass(int) int { return -1 }
