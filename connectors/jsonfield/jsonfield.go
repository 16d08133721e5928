// Package jsonfield holds the JSON field types store webhooks need:
// resource ids that exceed 2^53 and arrive as numbers or strings, money
// amounts kept as exact decimal text, and optional integers. Decoding
// through them never goes through float64.
package jsonfield

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
)

// ID is a resource id kept as the digits of the JSON number (real Shopify
// ids exceed 2^53, beyond float64's exact range); ids sent as strings are
// accepted too.
type ID string

// UnmarshalJSON accepts a number, a string or null.
func (i *ID) UnmarshalJSON(b []byte) error {
	s, err := Scalar(b)
	if err != nil {
		return fmt.Errorf("id: %w", err)
	}
	*i = ID(s)
	return nil
}

// Amount is a decimal money amount kept as text, whether it came as a
// string ("199.00") or a JSON number (29.35), so behavior.ParseMoney reads
// it exactly.
type Amount string

// UnmarshalJSON accepts a number, a string or null.
func (a *Amount) UnmarshalJSON(b []byte) error {
	s, err := Scalar(b)
	if err != nil {
		return fmt.Errorf("amount: %w", err)
	}
	*a = Amount(s)
	return nil
}

// OptInt is an integer that may be absent or null, such as a stock count.
type OptInt struct {
	N   int64
	Set bool
}

// UnmarshalJSON accepts an integer as a number or a string, or null.
func (o *OptInt) UnmarshalJSON(b []byte) error {
	s, err := Scalar(b)
	if err != nil {
		return fmt.Errorf("integer: %w", err)
	}
	if s == "" {
		*o = OptInt{}
		return nil
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return fmt.Errorf("integer: %q", s)
	}
	*o = OptInt{N: n, Set: true}
	return nil
}

// Ptr returns the value as a pointer, nil when absent.
func (o OptInt) Ptr() *int64 {
	if !o.Set {
		return nil
	}
	n := o.N
	return &n
}

// Scalar returns the text of a JSON string or number, "" for null.
func Scalar(b []byte) (string, error) {
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

// FirstNonEmpty returns the first argument that is not blank, trimmed.
func FirstNonEmpty(ss ...string) string {
	for _, s := range ss {
		if s = strings.TrimSpace(s); s != "" {
			return s
		}
	}
	return ""
}

// DecodeObject decodes a JSON object keeping numbers as json.Number, so
// ids and amounts edited in sample payloads survive re-encoding exactly.
func DecodeObject(raw []byte) (map[string]any, error) {
	var m map[string]any
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	if err := dec.Decode(&m); err != nil {
		return nil, err
	}
	return m, nil
}
