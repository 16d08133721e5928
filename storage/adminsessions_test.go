package storage

import (
	"context"
	"errors"
	"path/filepath"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/nudge-email/nudge/clock"
)

// adminSessionKeys counts the entries of the admin sessions bucket, -1
// when it does not exist.
func adminSessionKeys(t *testing.T, db *DB) int {
	t.Helper()
	n := -1
	err := db.bolt.View(func(tx *bolt.Tx) error {
		if b := tx.Bucket(bucketAdminSessions); b != nil {
			n = b.Stats().KeyN
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// TestAdminSessionRevocation: a revoked session stays revoked across a
// reopen of the file (the point of storing it), until its time is up;
// expired entries are dropped by the next revocation.
func TestAdminSessionRevocation(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	t0 := time.Date(2026, 5, 4, 10, 0, 0, 0, time.UTC)
	clk := clock.NewFake(t0)
	path := filepath.Join(t.TempDir(), FileName)
	db, err := Open(path, Options{Clock: clk, NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })

	// A file that never stored a logout has no bucket: nothing is revoked.
	if got, err := db.SessionRevoked(ctx, "a"); err != nil || got {
		t.Fatalf("fresh file: %v, %v; want false, nil", got, err)
	}
	if n := adminSessionKeys(t, db); n != -1 {
		t.Fatalf("a read created the bucket (%d keys)", n)
	}

	revokes := []struct {
		id    string
		until time.Time
	}{
		{"a", t0.Add(12 * time.Hour)},
		{"b", t0.Add(time.Hour)},
		{"past", t0.Add(-time.Second)}, // already over: not kept
	}
	for _, r := range revokes {
		if err := db.RevokeSession(ctx, r.id, r.until); err != nil {
			t.Fatalf("revoke %s: %v", r.id, err)
		}
	}
	if err := db.RevokeSession(ctx, "", t0.Add(time.Hour)); !errors.Is(err, ErrInvalid) {
		t.Fatalf("empty id: %v, want ErrInvalid", err)
	}

	// A restart must not bring a logged-out session back.
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	db, err = Open(path, Options{Clock: clk, NoSync: true})
	if err != nil {
		t.Fatal(err)
	}

	checks := []struct {
		name    string
		advance time.Duration
		id      string
		want    bool
	}{
		{"revoked", 0, "a", true},
		{"revoked shorter", 0, "b", true},
		{"never revoked", 0, "c", false},
		{"revoked in the past", 0, "past", false},
		{"past its until", time.Hour, "b", false},
		{"still within its until", 0, "a", true},
		{"a's until passed too", 11 * time.Hour, "a", false},
	}
	for _, tc := range checks {
		clk.Advance(tc.advance)
		got, err := db.SessionRevoked(ctx, tc.id)
		if err != nil || got != tc.want {
			t.Fatalf("%s: SessionRevoked(%q) = %v, %v; want %v", tc.name, tc.id, got, err, tc.want)
		}
	}

	if n := adminSessionKeys(t, db); n != 2 {
		t.Fatalf("before pruning: %d keys, want 2 (a, b)", n)
	}
	if err := db.RevokeSession(ctx, "d", clk.Now().Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	if n := adminSessionKeys(t, db); n != 1 {
		t.Fatalf("after pruning: %d keys, want 1 (d)", n)
	}

	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := db.SessionRevoked(ctx, "d"); !errors.Is(err, ErrClosed) {
		t.Fatalf("closed store: %v, want ErrClosed", err)
	}
}
