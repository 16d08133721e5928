package storage

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"

	bolt "go.etcd.io/bbolt"
)

// DeliveryExporter is implemented by stores that can list the raw
// deliveries held about a person, for `nudge export` (the bbolt store
// does). It is not part of Store so other implementations keep compiling;
// an export through a store without it fails rather than leave the raw
// bodies out unsaid.
type DeliveryExporter interface {
	// ExportDeliveries returns the raw deliveries held about a profile;
	// see DB.ExportDeliveries.
	ExportDeliveries(ctx context.Context, profileID string) ([]Delivery, error)
}

var _ DeliveryExporter = (*DB)(nil)

// ExportDeliveries returns the raw deliveries held about a profile, the
// ones Forget erases with it, ordered by receipt: each delivery one of its
// records was normalized from, and each delivery whose body mentions one
// of its addresses (ignored topics, stored without records). A delivery
// whose body is gone (pruned by retention) is left out.
//
// Body is this person's part of the delivery only:
//
//   - A body that is a JSON array is a batch of events (SendGrid's Event
//     Webhook posts many recipients' events in one request), possibly of
//     several people: only the elements that mention one of the person's
//     addresses are kept, in a new array (none: the delivery is left
//     out). Forget erases the whole batch; the export must not disclose
//     the other recipients' events.
//   - Any other body of a delivery the person's records came from is one
//     event about them and is returned whole.
//   - Any other body found only because it mentions an address is
//     returned whole when it mentions the address as an address (not
//     inside a longer one, as joann@ contains ann@) and no other
//     profile's record came from it: an ignored topic about this person.
//     A delivery another profile's records came from is that person's
//     (an order naming this address in a note), and is left out.
//
// For an unknown profile it returns ErrNotFound.
func (db *DB) ExportDeliveries(ctx context.Context, profileID string) ([]Delivery, error) {
	var emails []string
	linked := map[string]bool{}
	err := db.view(ctx, func(tx *bolt.Tx) error {
		clear(linked)
		p, err := getProfileTx(tx, profileID)
		if err != nil {
			return err
		}
		emails = profileEmails(&p)
		prefix := profilePrefix(p.ID)
		records := tx.Bucket(bucketRecords)
		c := tx.Bucket(bucketRecByProfile).Cursor()
		for k, _ := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, _ = c.Next() {
			if len(k) <= len(prefix)+8 {
				continue
			}
			var sr struct {
				D string `json:"d"`
			}
			if _, err := getJSON(records, k[len(prefix)+8:], &sr); err != nil {
				return err
			}
			if sr.D != "" {
				linked[sr.D] = true
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("storage: export deliveries of %q: %w", profileID, err)
	}
	for i, e := range emails {
		emails[i] = strings.ToLower(e)
	}
	// The same search Forget makes for deliveries without records.
	mentioning, err := db.deliveriesMentioning(ctx, emails)
	if err != nil {
		return nil, fmt.Errorf("storage: export deliveries of %q: %w", profileID, err)
	}
	ids := make([]string, 0, len(linked)+len(mentioning))
	for id := range linked {
		ids = append(ids, id)
	}
	for _, id := range mentioning {
		if !linked[id] {
			ids = append(ids, id)
		}
	}
	slices.Sort(ids)

	var out []Delivery
	// unlinked are the deliveries found by content alone whose whole body
	// would be exported, pending the check that no one else's records
	// came from them.
	var unlinked []int
	for _, id := range ids {
		d, err := db.Delivery(ctx, id)
		if errors.Is(err, ErrNotFound) {
			continue // pruned, or erased meanwhile
		}
		if err != nil {
			return nil, fmt.Errorf("storage: export deliveries of %q: %w", profileID, err)
		}
		if elems, ok := jsonArray(d.Body); ok {
			part := personalElements(elems, emails)
			if part == nil {
				continue
			}
			d.Body = part
		} else if !linked[id] {
			if !bodyMentions(d.Body, emails) {
				continue
			}
			unlinked = append(unlinked, len(out))
		}
		out = append(out, d)
	}
	if len(unlinked) > 0 {
		claimed, err := db.deliveriesOfRecords(ctx, out, unlinked)
		if err != nil {
			return nil, fmt.Errorf("storage: export deliveries of %q: %w", profileID, err)
		}
		out = slices.DeleteFunc(out, func(d Delivery) bool { return claimed[d.ID] })
	}
	slices.SortStableFunc(out, func(a, b Delivery) int { return a.ReceivedAt.Compare(b.ReceivedAt) })
	return out, nil
}

// ExportBody is a raw body as an export shows it: the JSON itself
// (json.RawMessage) when the body is JSON, else the text as a string.
func ExportBody(body []byte) any {
	if json.Valid(body) {
		return json.RawMessage(body)
	}
	return string(body)
}

// deliveriesOfRecords reports which of the deliveries ds[i], i in idx,
// some stored record came from. It reads every record; ExportDeliveries
// calls it only when a body found by content would be exported whole.
func (db *DB) deliveriesOfRecords(ctx context.Context, ds []Delivery, idx []int) (map[string]bool, error) {
	want := map[string]bool{}
	for _, i := range idx {
		want[ds[i].ID] = true
	}
	claimed := map[string]bool{}
	err := pageScan(ctx, db, bucketRecords, nil, nil,
		func(_ *bolt.Tx, k, v []byte) (string, bool, error) {
			var sr struct {
				D string `json:"d"`
			}
			if err := json.Unmarshal(v, &sr); err != nil {
				return "", false, fmt.Errorf("decode record %s: %w", k, err)
			}
			return sr.D, want[sr.D], nil
		},
		func(id string) error { claimed[id] = true; return nil })
	return claimed, err
}

// jsonArray splits a body that is a JSON array into its elements.
func jsonArray(body []byte) ([]json.RawMessage, bool) {
	t := bytes.TrimSpace(body)
	if len(t) == 0 || t[0] != '[' {
		return nil, false
	}
	var elems []json.RawMessage
	if err := json.Unmarshal(t, &elems); err != nil {
		return nil, false
	}
	return elems, true
}

// personalElements returns, as a JSON array, the elements that mention one
// of the addresses; nil when none does.
func personalElements(elems []json.RawMessage, emails []string) []byte {
	var out []byte
	for _, el := range elems {
		var v any
		if json.Unmarshal(el, &v) != nil || !valueMentions(v, emails) {
			continue
		}
		if out == nil {
			out = append(out, '[')
		} else {
			out = append(out, ',')
		}
		out = append(out, el...)
	}
	if out == nil {
		return nil
	}
	return append(out, ']')
}

// bodyMentions reports whether a body mentions one of the addresses: in
// one of its strings (or keys) when it is JSON, so escapes are undone,
// else in its text.
func bodyMentions(body []byte, emails []string) bool {
	var v any
	if json.Unmarshal(body, &v) == nil {
		return valueMentions(v, emails)
	}
	return textMentions(string(body), emails)
}

// valueMentions walks a decoded JSON value for a string naming one of the
// addresses.
func valueMentions(v any, emails []string) bool {
	switch v := v.(type) {
	case string:
		return textMentions(v, emails)
	case []any:
		for _, e := range v {
			if valueMentions(e, emails) {
				return true
			}
		}
	case map[string]any:
		for k, e := range v {
			if textMentions(k, emails) || valueMentions(e, emails) {
				return true
			}
		}
	}
	return false
}

// textMentions reports whether s contains one of the (lower-case)
// addresses, case-insensitively, as a whole address: "Ann <ann@x.com>"
// and "mailto:ann@x.com" mention ann@x.com; joann@x.com and ann@x.com.au
// do not.
func textMentions(s string, emails []string) bool {
	ls := strings.ToLower(s)
	for _, e := range emails {
		if e == "" {
			continue
		}
		for from := 0; ; {
			i := strings.Index(ls[from:], e)
			if i < 0 {
				break
			}
			i += from
			end := i + len(e)
			if (i == 0 || !localByte(ls[i-1])) && (end == len(ls) || !domainContinues(ls[end:])) {
				return true
			}
			from = i + 1
		}
	}
	return false
}

// localByte reports a byte that would make the text before a match part of
// a longer local part.
func localByte(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c >= 0x80 ||
		c == '.' || c == '+' || c == '-' || c == '_' || c == '\''
}

// domainContinues reports whether rest, the text after a match, carries
// on its domain (ann@x.co in ann@x.com, ann@x.com in ann@x.com.au); a
// sentence's full stop does not.
func domainContinues(rest string) bool {
	label := func(c byte) bool {
		return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c >= 0x80 || c == '-' || c == '_'
	}
	if label(rest[0]) {
		return true
	}
	return rest[0] == '.' && len(rest) > 1 && label(rest[1])
}
