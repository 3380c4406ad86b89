// Command memory allocates until it cannot, keeping all of it live.
package main

var kept [][]byte

func main() {
	for {
		b := make([]byte, 1<<20)
		for i := range b {
			b[i] = byte(i)
		}
		kept = append(kept, b)
	}
}
