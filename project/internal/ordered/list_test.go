package ordered

import (
	"math/rand/v2"
	"slices"
	"testing"
)

func intLess(a, b int) bool { return a < b }

// TestListAgreesWithASortedSlice runs random insertions and removals on a
// List and on a plain sorted slice and compares ranks, searches and slices.
func TestListAgreesWithASortedSlice(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	l := New(intLess)
	var want []int
	for step := range 60000 {
		v := r.IntN(20000)
		i, found := slices.BinarySearch(want, v)
		if r.IntN(3) == 0 {
			if got := l.Remove(v); got != found {
				t.Fatalf("step %d: Remove(%d) = %v, want %v", step, v, got, found)
			}
			if found {
				want = slices.Delete(want, i, i+1)
			}
		} else {
			if got := l.Insert(v); got == found {
				t.Fatalf("step %d: Insert(%d) = %v with the value there: %v", step, v, got, found)
			}
			if !found {
				want = slices.Insert(want, i, v)
			}
		}
		if l.Len() != len(want) {
			t.Fatalf("step %d: Len %d, want %d", step, l.Len(), len(want))
		}
		if step%997 == 0 {
			checkList(t, l, want)
		}
	}
	checkList(t, l, want)
}

func checkList(t *testing.T, l *List[int], want []int) {
	t.Helper()
	if got := l.Slice(nil, 0, len(want)+5); !slices.Equal(got, want) {
		t.Fatalf("Slice: %d values, want %d", len(got), len(want))
	}
	for i, v := range want {
		if rank, ok := l.Rank(v); !ok || rank != i+1 {
			t.Fatalf("Rank(%d) = %d, %v; want %d", v, rank, ok, i+1)
		}
		if pos := l.Search(v); pos != i {
			t.Fatalf("Search(%d) = %d, want %d", v, pos, i)
		}
	}
	if _, ok := l.Rank(-1); ok {
		t.Fatal("Rank of a missing value reports it there")
	}
	for _, off := range []int{0, 1, len(want) / 2, max(len(want)-3, 0), len(want)} {
		got := l.Slice(nil, off, 7)
		end := min(off+7, len(want))
		if !slices.Equal(got, want[off:end]) {
			t.Fatalf("Slice(%d, 7) = %v, want %v", off, got, want[off:end])
		}
	}
}

func TestBuildEqualsInsertions(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	vals := r.Perm(5000)
	b := Build(intLess, slices.Clone(vals))
	l := New(intLess)
	for _, v := range vals {
		l.Insert(v)
	}
	want := l.Slice(nil, 0, 6000)
	checkList(t, b, want)
	b.Insert(6000)
	b.Remove(0)
	if rank, _ := b.Rank(6000); rank != 5000 {
		t.Fatalf("rank after insert into a built list: %d", rank)
	}
}
