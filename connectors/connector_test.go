package connectors

import (
	"errors"
	"testing"
	"time"
)

// A stale signature's error says which way it is off: the audit read "is
// 1h0m0s from now" for a timestamp an hour old and "-1h0m0s from now" for
// one an hour ahead.
func TestStale(t *testing.T) {
	for _, tc := range []struct {
		age  time.Duration
		want string
	}{
		{time.Hour, "stripe: verify: timestamp 1700000000 is 1h0m0s old, tolerance 5m0s"},
		{-time.Hour, "stripe: verify: timestamp 1700000000 is 1h0m0s in the future, tolerance 5m0s"},
	} {
		err := Stale("stripe", 1700000000, tc.age, 5*time.Minute)
		if !errors.Is(err, ErrStale) {
			t.Errorf("%v is not ErrStale", err)
		}
		if got := err.Error(); got[:len(tc.want)] != tc.want {
			t.Errorf("got %q, want prefix %q", got, tc.want)
		}
	}
}
