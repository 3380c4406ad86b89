// Command loop never ends and never calls the host: only the worker's time
// limit can stop it.
package main

var n uint64

func main() {
	for {
		n++
	}
}
