// Command appckpt is a command module that checkpoints itself through the
// SDK: it folds the numbers 0..N-1 into a running hash, offering a
// checkpoint of (i, hash) whenever the runner wants one, and prints the
// final hash. Resumed from any checkpoint it prints what an uninterrupted run
// prints.
package main

import (
	"encoding/binary"
	"fmt"
	"os"
	"strconv"

	"github.com/momonga-project/momonga/workunits/sdk"
)

func main() {
	n, _ := strconv.ParseUint(os.Args[1], 10, 64)
	var i, h uint64 = 0, 14695981039346656037
	if state, err := sdk.Resume(); err != nil {
		fmt.Fprintln(os.Stderr, "resume:", err)
		os.Exit(1)
	} else if len(state) == 16 {
		i, h = binary.LittleEndian.Uint64(state), binary.LittleEndian.Uint64(state[8:])
	}
	for ; i < n; i++ {
		if i%1000 == 0 {
			if sdk.TimeToCheckpoint() {
				state := binary.LittleEndian.AppendUint64(binary.LittleEndian.AppendUint64(nil, i), h)
				if err := sdk.Checkpoint(state); err != nil {
					fmt.Fprintln(os.Stderr, "checkpoint:", err)
				}
			}
			sdk.Progress(float64(i) / float64(n))
		}
		h = (h ^ i) * 1099511628211
	}
	fmt.Println(h)
}
