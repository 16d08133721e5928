package storage

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/nudge-email/nudge/behavior"
)

// hashedEmailKey is the suppression key of a forgotten address: enough to
// recognise it again, not enough to read it back.
func hashedEmailKey(email string) string {
	sum := sha256.Sum256([]byte(behavior.NormalizeEmail(email)))
	return "sha256:" + hex.EncodeToString(sum[:])
}

// suppressionRank orders reasons by how final they are. A stronger reason
// replaces a weaker one; at equal strength the earliest entry stays, so
// the list keeps the first evidence. Bounces, drops and spam reports
// describe the address itself and are never lifted by a consent grant;
// a manual entry is an operator's decision and outranks a plain
// unsubscribe.
func suppressionRank(reason string) int {
	switch reason {
	case behavior.SuppressBounced, behavior.SuppressDropped, behavior.SuppressSpam:
		return 3
	case behavior.SuppressManual:
		return 2
	default:
		return 1
	}
}

// replacesSuppression reports whether s should replace old: a stronger
// reason wins; at equal strength the earlier evidence (by when it
// happened, then by record id) stays. The order depends only on the
// entries, never on the order webhooks arrived in, so redelivered and
// shuffled events end in the same state.
func replacesSuppression(s, old Suppression) bool {
	rs, ro := suppressionRank(s.Reason), suppressionRank(old.Reason)
	if rs != ro {
		return rs > ro
	}
	if !s.At.Equal(old.At) {
		return s.At.Before(old.At)
	}
	return s.RecordID < old.RecordID
}

// suppressTx puts s unless an entry at least as strong exists.
func suppressTx(tx *bolt.Tx, s Suppression) error {
	b := tx.Bucket(bucketSuppressions)
	var old Suppression
	ok, err := getJSON(b, []byte(s.Email), &old)
	if err != nil {
		return err
	}
	if ok && !replacesSuppression(s, old) {
		return nil
	}
	return putJSON(b, []byte(s.Email), s)
}

// liftUnsubscribeTx removes an "unsubscribed" or "forgotten" suppression
// of email (under the address or, for a forgotten person, its hash) made
// before at: a later opt-in undoes those, nothing else.
func liftUnsubscribeTx(tx *bolt.Tx, email string, at time.Time) error {
	b := tx.Bucket(bucketSuppressions)
	for _, key := range []string{email, hashedEmailKey(email)} {
		var s Suppression
		ok, err := getJSON(b, []byte(key), &s)
		if err != nil {
			return err
		}
		if !ok || (s.Reason != behavior.SuppressUnsubscribed && s.Reason != behavior.SuppressForgotten) || !at.After(s.At) {
			continue
		}
		if err := b.Delete([]byte(key)); err != nil {
			return err
		}
	}
	return nil
}

// applyRecordSuppression keeps the suppression list in step with a record:
// unsubscribes, spam reports and permanent bounces add the address; a
// resubscribe, or a grant of consent decided after it (see
// behavior.Consent.Reaffirms), lifts an unsubscribe. The record's own
// address is used, else the profile's primary one.
func applyRecordSuppression(tx *bolt.Tx, r behavior.Record, p *Profile) error {
	email := r.Email
	if email == "" {
		email = p.Email
	}
	if email == "" {
		return nil
	}
	if reason, ok := r.Suppresses(); ok {
		err := suppressTx(tx, Suppression{Email: email, Reason: reason, Source: r.Source, RecordID: r.ID, At: r.At})
		if err != nil {
			return fmt.Errorf("suppress: %w", err)
		}
		return nil
	}
	var liftAt time.Time
	switch {
	case r.Kind == behavior.Resubscribed:
		liftAt = r.At
	case r.Consent.Reaffirms(r.Kind):
		liftAt = r.Consent.DecidedAt(r.At)
	default:
		return nil
	}
	if err := liftUnsubscribeTx(tx, email, liftAt); err != nil {
		return fmt.Errorf("lift suppression: %w", err)
	}
	return nil
}

// Suppress adds an address to the do-not-mail list (reason defaults to
// manual, At to now). An existing entry at least as strong is kept.
func (db *DB) Suppress(ctx context.Context, s Suppression) error {
	s.Email = behavior.NormalizeEmail(s.Email)
	if !plausibleEmail(s.Email) {
		return fmt.Errorf("storage: suppress: %w: email %q is not an address", ErrInvalid, s.Email)
	}
	if s.Reason == "" {
		s.Reason = behavior.SuppressManual
	}
	if s.At.IsZero() {
		s.At = db.now()
	}
	s.At = s.At.UTC()
	if err := db.update(ctx, func(tx *bolt.Tx) error { return suppressTx(tx, s) }); err != nil {
		return fmt.Errorf("storage: suppress: %w", err)
	}
	return nil
}

// Unsuppress removes an address from the list, including its hashed entry
// if the person was forgotten. Removing an absent address is not an error.
func (db *DB) Unsuppress(ctx context.Context, email string) error {
	email = behavior.NormalizeEmail(email)
	err := db.update(ctx, func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketSuppressions)
		if err := b.Delete([]byte(email)); err != nil {
			return err
		}
		return b.Delete([]byte(hashedEmailKey(email)))
	})
	if err != nil {
		return fmt.Errorf("storage: unsuppress: %w", err)
	}
	return nil
}

// Suppressed returns the entry for an address, also when only the hash of
// a forgotten address is held (the entry's Email is then the address asked
// about).
func (db *DB) Suppressed(ctx context.Context, email string) (Suppression, bool, error) {
	email = behavior.NormalizeEmail(email)
	var s Suppression
	var found bool
	err := db.view(ctx, func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketSuppressions)
		var err error
		if found, err = getJSON(b, []byte(email), &s); err != nil || found {
			return err
		}
		found, err = getJSON(b, []byte(hashedEmailKey(email)), &s)
		return err
	})
	if err != nil {
		return Suppression{}, false, fmt.Errorf("storage: suppressed: %w", err)
	}
	if found {
		s.Email = email
	}
	return s, found, nil
}

// ListSuppressions calls fn for every entry in key order; forgotten
// addresses appear as "sha256:…".
func (db *DB) ListSuppressions(ctx context.Context, fn func(Suppression) error) error {
	err := pageScan(ctx, db, bucketSuppressions, nil, nil,
		func(_ *bolt.Tx, k, v []byte) (Suppression, bool, error) {
			var s Suppression
			err := decodeJSON(k, v, &s)
			return s, err == nil, err
		}, fn)
	if err != nil {
		return fmt.Errorf("storage: list suppressions: %w", err)
	}
	return nil
}
