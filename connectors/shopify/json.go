package shopify

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// id is a Shopify resource id. Real ids exceed 2^53, so they are kept as
// the digits of the JSON number (never a float64); some payloads send ids
// as strings, which are accepted too.
type id string

func (i *id) UnmarshalJSON(b []byte) error {
	s, err := scalar(b)
	if err != nil {
		return fmt.Errorf("id: %w", err)
	}
	*i = id(s)
	return nil
}

// amount is a decimal money amount kept as text: Shopify sends most as
// strings ("199.00") and a few as JSON numbers (refund_line_items
// subtotal), and both are parsed exactly by behavior.ParseMoney.
type amount string

func (a *amount) UnmarshalJSON(b []byte) error {
	s, err := scalar(b)
	if err != nil {
		return fmt.Errorf("amount: %w", err)
	}
	*a = amount(s)
	return nil
}

// optInt is an integer that may be absent or null, such as a stock count.
type optInt struct {
	n   int64
	set bool
}

func (o *optInt) UnmarshalJSON(b []byte) error {
	s, err := scalar(b)
	if err != nil {
		return fmt.Errorf("integer: %w", err)
	}
	if s == "" {
		*o = optInt{}
		return nil
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return fmt.Errorf("integer: %q", s)
	}
	*o = optInt{n: n, set: true}
	return nil
}

// ptr returns the value as a pointer, nil when absent.
func (o optInt) ptr() *int64 {
	if !o.set {
		return nil
	}
	n := o.n
	return &n
}

// scalar returns the text of a JSON string or number, "" for null.
func scalar(b []byte) (string, error) {
	b = bytes.TrimSpace(b)
	switch {
	case len(b) == 0:
		return "", fmt.Errorf("empty value")
	case string(b) == "null":
		return "", nil
	case b[0] == '"':
		var s string
		if err := json.Unmarshal(b, &s); err != nil {
			return "", err
		}
		return strings.TrimSpace(s), nil
	case b[0] == '-' || b[0] >= '0' && b[0] <= '9':
		return string(b), nil // the decoder has already checked it is a valid number
	}
	return "", fmt.Errorf("want a number or a string, got %.20s", b)
}

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

func firstNonEmpty(ss ...string) string {
	for _, s := range ss {
		if s = strings.TrimSpace(s); s != "" {
			return s
		}
	}
	return ""
}
