package accounting

import (
	"encoding/json"
	"fmt"
	"math"
	"time"
)

// History (DESIGN §9): besides its totals, every host, user and team keeps
// its credit by day for the last HistoryDays days and by month for the last
// HistoryMonths months, and the project keeps its own by hour, day and
// month, for the stats site's charts and its computing power. All of it is
// counted from the grants' times, never from a clock, so every member keeps
// the same history; it is part of the snapshot (version 2 on).

// Bounds of the history kept.
const (
	HistoryDays          = 90
	HistoryMonths        = 120
	ProjectHistoryHours  = 48
	ProjectHistoryDays   = 400
	ProjectHistoryMonths = 1200
)

// Bucket is the credit granted in one period: an hour, a day or a month,
// numbered from the Unix epoch (Hour, Day, Month).
type Bucket struct {
	At     int32
	Credit float64
}

// MarshalJSON writes a bucket as [at, credit]: a history is mostly
// buckets, and names would double its size.
func (b Bucket) MarshalJSON() ([]byte, error) {
	return json.Marshal([2]float64{float64(b.At), b.Credit})
}

// UnmarshalJSON reads [at, credit].
func (b *Bucket) UnmarshalJSON(data []byte) error {
	var v [2]float64
	if err := json.Unmarshal(data, &v); err != nil {
		return err
	}
	if v[0] != math.Trunc(v[0]) || math.Abs(v[0]) > math.MaxInt32 {
		return fmt.Errorf("history period %g is not a whole number", v[0])
	}
	b.At, b.Credit = int32(v[0]), v[1]
	return nil
}

// Hour, Day and Month number the period t falls in, in UTC, from the Unix
// epoch.
func Hour(t time.Time) int32 { return int32(t.Unix() / 3600) }
func Day(t time.Time) int32  { return int32(t.Unix() / 86400) }
func Month(t time.Time) int32 {
	u := t.UTC()
	return int32((u.Year()-1970)*12 + int(u.Month()) - 1)
}

// DayTime, HourTime and MonthTime are when a period starts.
func DayTime(d int32) time.Time  { return time.Unix(int64(d)*86400, 0).UTC() }
func HourTime(h int32) time.Time { return time.Unix(int64(h)*3600, 0).UTC() }
func MonthTime(m int32) time.Time {
	return time.Date(1970+int(m)/12, time.Month(m%12+1), 1, 0, 0, 0, 0, time.UTC)
}

// addBucket adds credit to period at of h, oldest first, and drops the
// periods that are keep or more before the newest one.
func addBucket(h []Bucket, at int32, credit float64, keep int32) []Bucket {
	n := len(h)
	switch {
	case n > 0 && h[n-1].At == at:
		h[n-1].Credit += credit
		return h
	case n == 0 || h[n-1].At < at:
		h = append(grow(h), Bucket{at, credit})
	default:
		// Grants come in the scheduler's order, so a time before the
		// newest period is rare (an opening balance, clocks of two lease
		// holders): it goes where it belongs.
		i := n
		for i > 0 && h[i-1].At > at {
			i--
		}
		if i > 0 && h[i-1].At == at {
			h[i-1].Credit += credit
			return h
		}
		if h[n-1].At-at >= keep {
			return h
		}
		h = append(grow(h), Bucket{})
		copy(h[i+1:], h[i:])
		h[i] = Bucket{at, credit}
	}
	newest := h[len(h)-1].At
	drop := 0
	for drop < len(h) && h[drop].At <= newest-keep {
		drop++
	}
	if drop > 0 {
		h = append(h[:0], h[drop:]...)
	}
	return h
}

// grow makes room for one more bucket in h, by a quarter at most: most
// accounts have a few days of history, and append's doubling would leave
// a million of them a third empty.
func grow(h []Bucket) []Bucket {
	if len(h) < cap(h) {
		return h
	}
	return append(make([]Bucket, 0, len(h)+max(1, len(h)/4)), h...)
}

// checkHistory reports what is wrong with a restored history.
func checkHistory(h []Bucket) error {
	for i, b := range h {
		if !(b.Credit >= 0) || math.IsInf(b.Credit, 0) {
			return fmt.Errorf("history credit %g", b.Credit)
		}
		if i > 0 && b.At <= h[i-1].At {
			return fmt.Errorf("history periods out of order")
		}
	}
	return nil
}

// Totals is the whole project's credit over time.
type Totals struct {
	Hours  []Bucket `json:"hours,omitempty"`
	Days   []Bucket `json:"days,omitempty"`
	Months []Bucket `json:"months,omitempty"`
}

func (t *Totals) add(at time.Time, credit float64) {
	t.Hours = addBucket(t.Hours, Hour(at), credit, ProjectHistoryHours)
	t.Days = addBucket(t.Days, Day(at), credit, ProjectHistoryDays)
	t.Months = addBucket(t.Months, Month(at), credit, ProjectHistoryMonths)
}

func (t Totals) clone() Totals {
	return Totals{Hours: clone(t.Hours), Days: clone(t.Days), Months: clone(t.Months)}
}

func clone(h []Bucket) []Bucket { return append([]Bucket(nil), h...) }

// Since sums the buckets of h from period from on.
func Since(h []Bucket, from int32) float64 {
	sum := 0.0
	for i := len(h) - 1; i >= 0 && h[i].At >= from; i-- {
		sum += h[i].Credit
	}
	return sum
}

// Series spreads h over the n periods ending with period last, zeros
// included: what a chart draws.
func Series(h []Bucket, last int32, n int) []float64 {
	out := make([]float64, n)
	first := last - int32(n) + 1
	for _, b := range h {
		if b.At >= first && b.At <= last {
			out[b.At-first] += b.Credit
		}
	}
	return out
}
