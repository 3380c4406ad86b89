// Command flood writes to stdout without end and ignores every error, so
// only the runner can stop it.
package main

import "os"

func main() {
	chunk := make([]byte, 32<<10)
	for i := range chunk {
		chunk[i] = 'x'
	}
	for {
		_, _ = os.Stdout.Write(chunk)
	}
}
