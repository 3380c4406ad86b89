// Package scratch is where a run that writes files keeps them: the folder
// it was given, or a temporary one removed when it ends (the benches, the
// chaos run, the demos).
package scratch

import "os"

// Dir returns dir when it is set, with a remove that does nothing: the
// caller keeps what it asked for. Otherwise it makes a temporary folder
// named as os.MkdirTemp names it from pattern, and remove deletes it with
// all it holds.
func Dir(dir, pattern string) (path string, remove func(), err error) {
	if dir != "" {
		return dir, func() {}, nil
	}
	tmp, err := os.MkdirTemp("", pattern)
	if err != nil {
		return "", nil, err // names the folder it could not make
	}
	return tmp, func() { os.RemoveAll(tmp) }, nil
}
