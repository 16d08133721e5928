package storage

import (
	"context"
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"
)

// admin_sessions: admin session id → u64 ns until which it stays revoked.
// Admin sessions are stateless signed cookies, so a logout can only be
// made to stick by remembering the logged-out ids until the cookies would
// have expired anyway; keeping them here rather than in memory means a
// restart does not bring a logged-out cookie back to life. The bucket is
// created by the first RevokeSession, so files written before it existed
// need no migration.
var bucketAdminSessions = []byte("admin_sessions")

// RevokeSession records that the admin session id must not be accepted
// before until (the session's own expiry). Entries whose time has passed
// are dropped in the same transaction, so the bucket holds at most the
// logouts of one session lifetime.
func (db *DB) RevokeSession(ctx context.Context, id string, until time.Time) error {
	if id == "" {
		return fmt.Errorf("storage: revoke session: %w: empty id", ErrInvalid)
	}
	now := db.now()
	err := db.update(ctx, func(tx *bolt.Tx) error {
		b, err := tx.CreateBucketIfNotExists(bucketAdminSessions)
		if err != nil {
			return err
		}
		// Collect first: deleting under a moving bbolt cursor skips keys.
		var expired [][]byte
		err = b.ForEach(func(k, v []byte) error {
			if len(v) != 8 || !keyTime(v).After(now) {
				expired = append(expired, k)
			}
			return nil
		})
		if err != nil {
			return err
		}
		for _, k := range expired {
			if err := b.Delete(k); err != nil {
				return err
			}
		}
		if !until.After(now) {
			return nil // already over: nothing left to refuse
		}
		return b.Put([]byte(id), timeKey(until))
	})
	if err != nil {
		return fmt.Errorf("storage: revoke session: %w", err)
	}
	return nil
}

// SessionRevoked reports whether the admin session id was revoked by
// RevokeSession and its until has not passed yet.
func (db *DB) SessionRevoked(ctx context.Context, id string) (bool, error) {
	now := db.now()
	var revoked bool
	err := db.view(ctx, func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketAdminSessions)
		if b == nil {
			return nil // no logout was ever stored
		}
		v := b.Get([]byte(id))
		revoked = len(v) == 8 && keyTime(v).After(now)
		return nil
	})
	if err != nil {
		return false, fmt.Errorf("storage: session revoked: %w", err)
	}
	return revoked, nil
}
