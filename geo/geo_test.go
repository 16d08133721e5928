package geo

import (
	"testing"
	"time"
)

func TestZone(t *testing.T) {
	tests := []struct{ country, region, want string }{
		{"US", "KY", "America/Kentucky/Louisville"}, // the audit's Louisville customer
		{"us", "us-ca", "America/Los_Angeles"},
		{"US", "", ""}, // hours apart: no guess
		{"CA", "BC", "America/Vancouver"},
		{"AU", "WA", "Australia/Perth"},
		{"AU", "XX", ""},
		{"DE", "BY", "Europe/Berlin"},
		{"FR", "", "Europe/Paris"},
		{"GB", "ENG", "Europe/London"},
		{"BR", "SP", "America/Sao_Paulo"},
		{"BR", "AM", "America/Manaus"},
		{"MX", "", "America/Mexico_City"},
		{"RU", "", "Europe/Moscow"},
		{"", "", ""},
		{"ZZ", "", ""},
	}
	for _, tc := range tests {
		if got := Zone(tc.country, tc.region); got != tc.want {
			t.Errorf("Zone(%q, %q) = %q, want %q", tc.country, tc.region, got, tc.want)
		}
	}
}

// Every zone named here must load, or a customer's quiet hours would fall
// back silently.
func TestEveryZoneLoads(t *testing.T) {
	check := func(z string) {
		if _, err := time.LoadLocation(z); err != nil {
			t.Errorf("%s: %v", z, err)
		}
	}
	for _, z := range singleZone {
		check(z)
	}
	for _, z := range multiZoneDefault {
		check(z)
	}
	for _, m := range regionZones {
		for _, z := range m {
			check(z)
		}
	}
	if len(singleZone) < 150 {
		t.Errorf("only %d one-zone countries", len(singleZone))
	}
}
