package sched

import (
	"reflect"
	"testing"

	wu "github.com/momonga-project/momonga/workunits"
)

// TestHostInfoKeepsEveryField checks that the compact description gives
// back every field of wu.HostInfo, so that a field added to the wire is not
// silently dropped by the scheduler's state.
func TestHostInfoKeepsEveryField(t *testing.T) {
	var in wu.HostInfo
	v := reflect.ValueOf(&in).Elem()
	for i := range v.NumField() {
		f := v.Field(i)
		switch f.Kind() {
		case reflect.String:
			f.SetString("x" + v.Type().Field(i).Name)
		case reflect.Int, reflect.Int64:
			f.SetInt(int64(i + 1))
		case reflect.Float64:
			f.SetFloat(float64(i) + 0.5)
		default:
			t.Fatalf("field %s of kind %s: teach this test its kind", v.Type().Field(i).Name, f.Kind())
		}
	}
	m := New(Config{})
	if got := m.compact(in).wire(); got != in {
		t.Errorf("compact then wire = %+v, want %+v", got, in)
	}
}
