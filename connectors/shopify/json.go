package shopify

import (
	"strings"
	"time"

	"github.com/nudge-email/nudge/connectors/jsonfield"
)

// The field types are shared with the other store connectors.
type (
	id     = jsonfield.ID
	amount = jsonfield.Amount
	optInt = jsonfield.OptInt
)

// parseTime reads Shopify's RFC 3339 timestamps; "" and unparseable
// values give the zero time so callers fall back to another field.
func parseTime(s string) time.Time {
	t, err := time.Parse(time.RFC3339, strings.TrimSpace(s))
	if err != nil {
		return time.Time{}
	}
	return t.UTC()
}

// firstTime returns the first of the given timestamps that parses.
func firstTime(ss ...string) time.Time {
	for _, s := range ss {
		if t := parseTime(s); !t.IsZero() {
			return t
		}
	}
	return time.Time{}
}

func firstNonEmpty(ss ...string) string { return jsonfield.FirstNonEmpty(ss...) }
