// Command recurse calls itself without end, with a large frame each time.
package main

import "os"

func down(n int) int {
	var frame [256]byte
	frame[n%len(frame)] = byte(n)
	return down(n+1) + int(frame[len(os.Args)])
}

func main() {
	os.Exit(down(0))
}
