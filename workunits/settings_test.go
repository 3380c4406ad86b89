package workunits

import (
	"strings"
	"testing"
)

func TestSettingsMessages(t *testing.T) {
	for name, raw := range map[string]string{
		"nothing to change":  `{"v":1,"user":"ann"}`,
		"bad team":           `{"v":1,"team":"a/b"}`,
		"control in country": `{"v":1,"country":"a\u0007b"}`,
		"country too long":   `{"v":1,"country":"` + strings.Repeat("a", MaxCountryBytes+1) + `"}`,
	} {
		if _, err := Decode[UserSet]([]byte(raw)); err == nil || ErrorCode(err) != CodeBadRequest {
			t.Errorf("%s: %v", name, err)
		}
	}
	for name, raw := range map[string]string{
		"javascript address":     `{"v":1,"name":"t","url":"javascript:alert(1)"}`,
		"address with a quote":   `{"v":1,"name":"t","url":"https://x/\"onmouseover=\""}`,
		"type out of range":      `{"v":1,"name":"t","type":13}`,
		"description too long":   `{"v":1,"name":"t","description":"` + strings.Repeat("a", MaxDescriptionBytes+1) + `"}`,
		"control in description": `{"v":1,"name":"t","description":"a\u0000"}`,
	} {
		if _, err := Decode[TeamAdd]([]byte(raw)); err == nil || ErrorCode(err) != CodeBadRequest {
			t.Errorf("team %s: %v", name, err)
		}
	}
	s, err := Decode[UserSet]([]byte(`{"v":1,"team":"","country":"Österreich","stats_export":false}`))
	if err != nil || *s.Team != "" || *s.Country != "Österreich" || *s.StatsExport {
		t.Fatalf("%+v %v", s, err)
	}
	if _, err := Decode[TeamAdd]([]byte(`{"v":1,"name":"t","url":"https://example.org/a?b=1","description":"two\nlines"}`)); err != nil {
		t.Fatal(err)
	}
	if _, err := Decode[UserAdd]([]byte(`{"v":1,"name":"ann","key_hash":"` + string(HashOf(nil)) + `","cross_project_id":"xyz"}`)); err == nil {
		t.Error("a cross-project id that is not 32 hex digits")
	}
	if _, err := Decode[Hello]([]byte(`{"v":1,"host":{"cpid":"not hex"}}`)); err == nil {
		t.Error("a host cpid that is not hex")
	}
}

func FuzzDecodeUserSet(f *testing.F) {
	fuzzDecoder[UserSet](f, `{"v":1,"user":"ann","team":"t","country":"Japan","stats_export":true}`)
}
