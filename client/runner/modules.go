package runner

import (
	"context"
	"crypto/sha256"
)

// compiledCache keeps the modules a worker process compiled, for the next
// tasks of the same apps: a warm worker then instantiates the module
// straight away instead of reading and checking its machine code again. A
// nil cache compiles for one run only.
type compiledCache struct {
	entries []*compiledEntry // the most recently used last
}

type compiledEntry struct {
	key  string
	eng  engine
	comp compiled
}

// cachedModules is how many compiled modules a worker keeps: a client runs
// tasks of a few apps at a time, and a Go module's code takes tens of MB.
const cachedModules = 2

func newCompiledCache() *compiledCache { return &compiledCache{} }

// compile returns the module compiled on the named engine and a function to
// call when the run is done with it.
func (c *compiledCache) compile(ctx context.Context, engineName string, wasm []byte, cacheDir string) (compiled, func(), error) {
	sum := sha256.Sum256(wasm)
	key := engineName + "\x00" + cacheDir + "\x00" + string(sum[:])
	if c != nil {
		for i, e := range c.entries {
			if e.key == key {
				c.entries = append(append(c.entries[:i:i], c.entries[i+1:]...), e)
				return e.comp, func() {}, nil
			}
		}
	}
	eng := engines[engineName]()
	comp, err := eng.compile(ctx, wasm, cacheDir)
	if err != nil {
		eng.close(ctx)
		return nil, nil, err
	}
	if c == nil {
		return comp, func() { comp.close(ctx); eng.close(ctx) }, nil
	}
	if len(c.entries) >= cachedModules {
		old := c.entries[0]
		c.entries = c.entries[1:]
		old.comp.close(ctx)
		old.eng.close(ctx)
	}
	c.entries = append(c.entries, &compiledEntry{key: key, eng: eng, comp: comp})
	return comp, func() {}, nil
}
