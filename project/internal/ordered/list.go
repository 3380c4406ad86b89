// Package ordered keeps values sorted so that the rank of a value and the
// values at a rank are found without walking them all: the leaderboards of
// the accounting peer (who is 1,234th by credit, the 20 hosts after the
// 500,000th) and the scheduler's index of names for search (DESIGN §9).
//
// A List is a sequence of sorted chunks of at most chunkSize values, so an
// insertion moves at most a chunk's worth of values, and a rank adds up
// the sizes of the chunks before. It is pure and deterministic: the same
// insertions and removals give the same list, whatever their timing.
package ordered

import (
	"slices"
	"sort"
)

// chunkSize bounds a chunk: with a million values, a few thousand chunk
// sizes to sum for a rank, and a few kilobytes to move for an insertion
// (moving was most of the cost with chunks four times as large).
const chunkSize = 256

// buildFill is how full Build leaves a chunk: room for insertions before a
// chunk splits, few chunks to sum.
const buildFill = chunkSize * 3 / 4

// List holds values in the order of less, which must be a strict total
// order (ties broken by something unique): equal values are one value.
// The zero List is not usable; make one with New.
type List[T any] struct {
	less   func(a, b T) bool
	chunks [][]T
	n      int
}

// New returns an empty list ordered by less.
func New[T any](less func(a, b T) bool) *List[T] {
	return &List[T]{less: less}
}

// Build returns a list of values, which it sorts; it is quicker than
// inserting them one by one.
func Build[T any](less func(a, b T) bool, values []T) *List[T] {
	sort.Slice(values, func(i, j int) bool { return less(values[i], values[j]) })
	l := New(less)
	for start := 0; start < len(values); start += buildFill {
		end := min(start+buildFill, len(values))
		l.chunks = append(l.chunks, append(make([]T, 0, buildFill+1), values[start:end]...))
	}
	l.n = len(values)
	return l
}

// Len is the number of values.
func (l *List[T]) Len() int { return l.n }

// chunk is the index of the chunk where v is or belongs: the first whose
// last value is not before v, or the last chunk.
func (l *List[T]) chunk(v T) int {
	i := sort.Search(len(l.chunks), func(i int) bool {
		c := l.chunks[i]
		return !l.less(c[len(c)-1], v)
	})
	return min(i, len(l.chunks)-1)
}

// Insert adds v; it reports false when v is already there.
func (l *List[T]) Insert(v T) bool {
	if len(l.chunks) == 0 {
		l.chunks = append(l.chunks, append(make([]T, 0, 8), v))
		l.n++
		return true
	}
	ci := l.chunk(v)
	c := l.chunks[ci]
	i := sort.Search(len(c), func(i int) bool { return !l.less(c[i], v) })
	if i < len(c) && !l.less(v, c[i]) {
		return false
	}
	if len(c) == cap(c) {
		// Grow no further than a chunk can hold: append's doubling
		// would leave most of a split chunk's array unused.
		c = append(make([]T, 0, min(2*cap(c), chunkSize+1)), c...)
	}
	var zero T
	c = append(c, zero)
	copy(c[i+1:], c[i:])
	c[i] = v
	l.n++
	if len(c) <= chunkSize {
		l.chunks[ci] = c
		return true
	}
	// Each half in an array of its own with room to grow by half, so a
	// list's arrays stay about three quarters full.
	half := len(c) / 2
	left := append(make([]T, 0, chunkSize*3/4), c[:half]...)
	right := append(make([]T, 0, chunkSize*3/4), c[half:]...)
	l.chunks[ci] = left
	l.chunks = slices.Insert(l.chunks, ci+1, right)
	return true
}

// Remove takes v out; it reports false when v was not there.
func (l *List[T]) Remove(v T) bool {
	ci, i, ok := l.find(v)
	if !ok {
		return false
	}
	c := l.chunks[ci]
	copy(c[i:], c[i+1:])
	var zero T
	c[len(c)-1] = zero
	c = c[:len(c)-1]
	l.n--
	if len(c) == 0 {
		l.chunks = slices.Delete(l.chunks, ci, ci+1)
		return true
	}
	l.chunks[ci] = c
	return true
}

func (l *List[T]) find(v T) (ci, i int, ok bool) {
	if len(l.chunks) == 0 {
		return 0, 0, false
	}
	ci = l.chunk(v)
	c := l.chunks[ci]
	i = sort.Search(len(c), func(i int) bool { return !l.less(c[i], v) })
	return ci, i, i < len(c) && !l.less(v, c[i])
}

// Rank is the position of v, from 1; ok is false when v is not there.
func (l *List[T]) Rank(v T) (rank int, ok bool) {
	ci, i, ok := l.find(v)
	if !ok {
		return 0, false
	}
	for _, c := range l.chunks[:ci] {
		rank += len(c)
	}
	return rank + i + 1, true
}

// Search is the position (from 0) of the first value not before v: where
// values from v on start.
func (l *List[T]) Search(v T) int {
	if len(l.chunks) == 0 {
		return 0
	}
	ci := l.chunk(v)
	c := l.chunks[ci]
	pos := sort.Search(len(c), func(i int) bool { return !l.less(c[i], v) })
	for _, c := range l.chunks[:ci] {
		pos += len(c)
	}
	return pos
}

// Slice appends to dst the values from position offset (from 0), at most
// limit of them, and returns it.
func (l *List[T]) Slice(dst []T, offset, limit int) []T {
	if offset < 0 || limit <= 0 {
		return dst
	}
	for _, c := range l.chunks {
		if offset >= len(c) {
			offset -= len(c)
			continue
		}
		take := min(len(c)-offset, limit)
		dst = append(dst, c[offset:offset+take]...)
		limit -= take
		offset = 0
		if limit == 0 {
			break
		}
	}
	return dst
}

// All calls fn with every value in order until fn returns false.
func (l *List[T]) All(fn func(T) bool) {
	for _, c := range l.chunks {
		for _, v := range c {
			if !fn(v) {
				return
			}
		}
	}
}
