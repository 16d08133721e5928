package server

import (
	"testing"

	"github.com/nudge-email/nudge/behavior"
)

// deliveryID must keep the ids behavior.DeriveID gave deliveries before,
// so a redelivery of one stored then still dedupes.
func TestDeliveryIDMatchesDeriveID(t *testing.T) {
	for _, c := range []struct{ key, body string }{
		{"shopify/main", `{"id":1}`},
		{"sendgrid", ""},
		{"", "\x00\xff binary"},
	} {
		if got, want := deliveryID(c.key, []byte(c.body)), behavior.DeriveID("delivery", c.key, c.body); got != want {
			t.Errorf("deliveryID(%q, %q) = %s, want %s", c.key, c.body, got, want)
		}
	}
}
