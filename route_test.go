package switchboard_test

import (
	"slices"
	"testing"

	sb "github.com/switchboard-sms/switchboard"
)

func TestRoutesLongestPrefixWins(t *testing.T) {
	rs := sb.NewRoutes([]sb.Route{
		{Prefix: "", Carriers: []string{"default"}},
		{Prefix: "+44", Carriers: []string{"uk", "default"}},
		{Prefix: "4477", Carriers: []string{"uk-mobile"}},
	})
	tests := map[string][]string{
		"+447700900123": {"uk-mobile"},
		"+442071234567": {"uk", "default"},
		"+15551234567":  {"default"},
	}
	for to, want := range tests {
		if got := rs.Match(to); !slices.Equal(got, want) {
			t.Errorf("Match(%s) = %v, want %v", to, got, want)
		}
	}
	if got := sb.NewRoutes([]sb.Route{{Prefix: "+1", Carriers: []string{"us"}}}).Match("+447700900123"); got != nil {
		t.Errorf("no default route: got %v, want nil", got)
	}
}
