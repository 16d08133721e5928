package storage

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	json "github.com/goccy/go-json"
	"maps"
	"slices"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/nudge-email/nudge/behavior"
)

// applyFacts folds one new record into its profile.
func applyFacts(p *Profile, r behavior.Record, now time.Time) {
	if r.Person != nil {
		set := func(dst *string, src string) {
			if src != "" {
				*dst = src
			}
		}
		set(&p.FirstName, r.Person.FirstName)
		set(&p.LastName, r.Person.LastName)
		set(&p.Phone, r.Person.Phone)
		set(&p.Timezone, r.Person.Timezone)
		if r.Person.Country != "" {
			// A new country brings its own region (or none).
			p.Country, p.Region = r.Person.Country, r.Person.Region
		}
		set(&p.Locale, r.Person.Locale)
	}
	if p.Email == "" && r.Email != "" {
		p.Email = r.Email
	}
	if p.FirstSeen.IsZero() || r.At.Before(p.FirstSeen) {
		p.FirstSeen = r.At
	}
	if r.At.After(p.LastSeen) {
		p.LastSeen = r.At
	}
	if p.Counts == nil {
		p.Counts = map[behavior.Kind]int{}
	}
	p.Counts[r.Kind]++
	if p.LastAt == nil {
		p.LastAt = map[behavior.Kind]time.Time{}
	}
	if r.At.After(p.LastAt[r.Kind]) {
		p.LastAt[r.Kind] = r.At
	}
	switch r.Kind {
	case behavior.OrderPlaced:
		p.OrdersCount++
		p.TotalSpent += r.Value
		if r.Currency != "" {
			p.Currency = r.Currency
		}
	case behavior.OrderRefunded:
		// May go below zero for a moment when a refund arrives before its
		// order; clamping would make the total depend on arrival order.
		p.TotalSpent -= r.Value
	}
	if p.Currency == "" && r.Currency != "" {
		p.Currency = r.Currency
	}
	if c := r.Consent; c != nil && c.State != "" {
		applyConsent(p, ConsentState{
			State: c.State, Source: r.Source, At: c.DecidedAt(r.At), RecordID: r.ID,
			Level: c.Level, CollectedFrom: c.CollectedFrom, Text: c.Text,
		})
	} else if r.Kind == behavior.Unsubscribed || r.Kind == behavior.SpamReported {
		// Saying no to the mail is withdrawing consent, wherever it was
		// said: the profile must not read "granted" beside its suppression,
		// and an older grant restated later must lose to it.
		applyConsent(p, ConsentState{
			State: behavior.ConsentDenied, Source: r.Source, At: r.At, RecordID: r.ID,
			CollectedFrom: string(r.Kind),
		})
	}
	p.UpdatedAt = now
}

// applyConsent takes c unless the profile already holds a newer decision:
// webhooks arrive out of order, and an old "granted" must not undo a
// later "denied".
func applyConsent(p *Profile, c ConsentState) bool {
	if !p.Consent.At.IsZero() && c.At.Before(p.Consent.At) {
		return false
	}
	p.Consent = c
	return true
}

// getProfileTx loads a live profile through aliases.
func getProfileTx(tx *bolt.Tx, id string) (Profile, error) {
	pid, ok := resolveProfileTx(tx, id)
	if !ok {
		return Profile{}, ErrNotFound
	}
	var p Profile
	if _, err := getJSON(tx.Bucket(bucketProfiles), []byte(pid), &p); err != nil {
		return Profile{}, err
	}
	return p, nil
}

// Profile returns a profile by id, following merges. It reads through
// the decode memo and fills it: a due step reads its profile just before
// the step's email_sent record updates it inside the single writer,
// which then finds the profile decoded (bench/sched).
func (db *DB) Profile(ctx context.Context, id string) (Profile, error) {
	var p Profile
	err := db.view(ctx, func(tx *bolt.Tx) error {
		pid, ok := resolveProfileTx(tx, id)
		if !ok {
			return ErrNotFound
		}
		raw := tx.Bucket(bucketProfiles).Get([]byte(pid))
		if raw == nil {
			return ErrNotFound
		}
		if p, ok = db.profiles.get(pid, raw); ok {
			return nil
		}
		p = Profile{}
		if err := json.Unmarshal(raw, &p); err != nil {
			return fmt.Errorf("decode %s: %w", pid, err)
		}
		// The memo owns what it is given: raw is bbolt's (valid only in
		// this transaction), p the caller's.
		db.profiles.put(pid, bytes.Clone(raw), cloneProfile(p))
		return nil
	})
	if err != nil {
		return Profile{}, fmt.Errorf("storage: profile %q: %w", id, err)
	}
	return p, nil
}

// ProfileByIdentity resolves one identity to its profile.
func (db *DB) ProfileByIdentity(ctx context.Context, id behavior.Identity) (Profile, error) {
	if id.Type == behavior.IdentEmail {
		id.Value = behavior.NormalizeEmail(id.Value)
	}
	key := id.Key()
	var p Profile
	err := db.view(ctx, func(tx *bolt.Tx) error {
		pid := tx.Bucket(bucketIdentities).Get([]byte(key))
		if pid == nil {
			return ErrNotFound
		}
		var err error
		p, err = getProfileTx(tx, string(pid))
		return err
	})
	if err != nil {
		return Profile{}, fmt.Errorf("storage: profile by %s: %w", id.Type, err)
	}
	return p, nil
}

// ProfileByEmail resolves an address (any case) to its profile.
func (db *DB) ProfileByEmail(ctx context.Context, email string) (Profile, error) {
	return db.ProfileByIdentity(ctx, behavior.Identity{Type: behavior.IdentEmail, Value: email})
}

// ScanProfiles calls fn for every live profile in id (creation) order,
// reading in chunks so fn may be slow.
func (db *DB) ScanProfiles(ctx context.Context, fn func(Profile) error) error {
	err := pageScan(ctx, db, bucketProfiles, nil, nil,
		func(_ *bolt.Tx, k, v []byte) (Profile, bool, error) {
			var p Profile
			if err := decodeJSON(k, v, &p); err != nil {
				return Profile{}, false, err
			}
			return p, true, nil
		}, fn)
	if err != nil {
		return fmt.Errorf("storage: scan profiles: %w", err)
	}
	return nil
}

// SetScores replaces a profile's insight scores and segment. It leaves
// UpdatedAt alone: UpdatedAt tracks behavior, so "changed since scored"
// stays answerable.
//
// Insights rescore a profile after every order it evaluates, so this runs
// about as often as webhooks append: it shares their group commit (and
// fsync) rather than taking the writer for a transaction of its own, and
// reads the profile through the decode memo the append just filled.
func (db *DB) SetScores(ctx context.Context, profileID string, scores map[string]float64, segment string, at time.Time) error {
	err := db.batch(ctx, func(tx *bolt.Tx) error {
		pid, ok := resolveProfileTx(tx, profileID)
		if !ok {
			return ErrNotFound
		}
		b := tx.Bucket(bucketProfiles)
		raw := b.Get([]byte(pid))
		p, ok := db.profiles.get(pid, raw)
		if !ok {
			if err := json.Unmarshal(raw, &p); err != nil {
				return fmt.Errorf("decode %s: %w", pid, err)
			}
		}
		p.Scores = maps.Clone(scores)
		p.Segment = segment
		p.ScoredAt = at.UTC()
		out, err := json.Marshal(p)
		if err != nil {
			return fmt.Errorf("encode %s: %w", pid, err)
		}
		if err := b.Put([]byte(p.ID), out); err != nil {
			return err
		}
		if p.ID == pid {
			// As in applyToProfile: out stays untouched, p unused.
			db.profiles.put(pid, out, p)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("storage: set scores of %q: %w", profileID, err)
	}
	return nil
}

// SetConsent records a consent change made outside a record. Like record
// consent, it loses to a decision with a later At (a zero At means now). A
// grant lifts an "unsubscribed" suppression made before it.
func (db *DB) SetConsent(ctx context.Context, profileID string, c ConsentState) error {
	if c.At.IsZero() {
		c.At = db.now()
	}
	c.At = c.At.UTC()
	err := db.update(ctx, func(tx *bolt.Tx) error {
		p, err := getProfileTx(tx, profileID)
		if err != nil {
			return err
		}
		if !applyConsent(&p, c) {
			return nil
		}
		p.UpdatedAt = db.now()
		if c.State == behavior.ConsentGranted {
			for _, e := range profileEmails(&p) {
				if err := liftUnsubscribeTx(tx, e, c.At); err != nil {
					return err
				}
			}
		}
		return putJSON(tx.Bucket(bucketProfiles), []byte(p.ID), p)
	})
	if err != nil {
		return fmt.Errorf("storage: set consent of %q: %w", profileID, err)
	}
	return nil
}

// profileEmails lists every address a profile is known by.
func profileEmails(p *Profile) []string {
	var out []string
	if p.Email != "" {
		out = append(out, p.Email)
	}
	for _, id := range p.Identities {
		if id.Type == behavior.IdentEmail && !slices.Contains(out, id.Value) {
			out = append(out, id.Value)
		}
	}
	return out
}

// putProductViews notes that the profile saw the record's products, for
// back-in-stock and price-drop fan-out.
func putProductViews(tx *bolt.Tx, r behavior.Record, pid string) error {
	b := tx.Bucket(bucketProductViews)
	at := binary.BigEndian.Uint64(timeKey(r.At))
	for _, prod := range behavior.ProductIDs(r.Items) {
		k := join([]byte(prod), []byte(pid))
		if v := b.Get(k); v != nil && binary.BigEndian.Uint64(v) >= at {
			continue
		}
		if err := b.Put(k, u64(at)); err != nil {
			return err
		}
	}
	return nil
}

// ProfilesByProduct returns the ids of profiles with records of the given
// kinds naming productID at or after since. The product_views index covers
// product_viewed, cart_updated, checkout_started and order_placed; other
// kinds are never found. When kinds narrows that set, each candidate's
// records since `since` are read to confirm.
func (db *DB) ProfilesByProduct(ctx context.Context, productID string, kinds []behavior.Kind, since time.Time) ([]string, error) {
	want := map[behavior.Kind]bool{}
	for _, k := range kinds {
		want[k] = true
	}
	all := len(kinds) == 0 || (want[behavior.ProductViewed] && want[behavior.CartUpdated] &&
		want[behavior.CheckoutStarted] && want[behavior.OrderPlaced])
	var out []string
	err := db.view(ctx, func(tx *bolt.Tx) error {
		out = nil
		prefix := join([]byte(productID), nil)
		c := tx.Bucket(bucketProductViews).Cursor()
		for k, v := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, v = c.Next() {
			if len(v) != 8 || (!since.IsZero() && keyTime(v).Before(since)) {
				continue
			}
			pid, ok := resolveProfileTx(tx, string(k[len(prefix):]))
			if !ok || slices.Contains(out, pid) {
				continue
			}
			if !all {
				hit, err := profileTouchedProduct(tx, pid, productID, want, since)
				if err != nil {
					return err
				}
				if !hit {
					continue
				}
			}
			out = append(out, pid)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("storage: profiles by product %q: %w", productID, err)
	}
	return out, nil
}

// profileTouchedProduct reports whether a profile has a record of one of
// the kinds naming the product at or after since.
func profileTouchedProduct(tx *bolt.Tx, pid, productID string, kinds map[behavior.Kind]bool, since time.Time) (bool, error) {
	prefix := profilePrefix(pid)
	c := tx.Bucket(bucketRecByProfile).Cursor()
	for k, _ := c.Seek(append(bytes.Clone(prefix), boundKey(since)...)); k != nil && bytes.HasPrefix(k, prefix); k, _ = c.Next() {
		sr, ok, err := getRecordTx(tx, k[len(prefix)+8:])
		if err != nil {
			return false, err
		}
		if !ok || !kinds[sr.R.Kind] {
			continue
		}
		for _, it := range sr.R.Items {
			if it.ProductID == productID {
				return true, nil
			}
		}
	}
	return false, nil
}

// decodeJSON decodes a value read by a cursor, naming its key on failure.
func decodeJSON(k, v []byte, dst any) error {
	if err := json.Unmarshal(v, dst); err != nil {
		return fmt.Errorf("decode %s: %w", k, err)
	}
	return nil
}
