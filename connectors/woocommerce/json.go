package woocommerce

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

func scalar(b []byte) (string, error) { return jsonfield.Scalar(b) }

// parseTime reads WooCommerce's *_gmt timestamps, which carry no zone
// ("2017-03-22T19:28:02") and are UTC, or RFC 3339 ones; "" and
// unparseable values give the zero time so callers fall back to another
// field.
func parseTime(s string) time.Time {
	s = strings.TrimSpace(s)
	if t, err := time.Parse("2006-01-02T15:04:05", s); err == nil {
		return t.UTC()
	}
	if t, err := time.Parse(time.RFC3339, s); err == nil {
		return t.UTC()
	}
	return time.Time{}
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
