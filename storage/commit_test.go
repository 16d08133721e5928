package storage

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"

	"github.com/nudge-email/nudge/behavior"
)

// TestCommitStatsCountEveryCommit checks the group commit's totals against
// what was written: sequential appends are one commit each, concurrent
// ones share commits (fewer commits than writes, every write counted
// once), a write that fails its batch and re-runs solo is not counted,
// and every commit lands in exactly one duration bucket.
func TestCommitStatsCountEveryCommit(t *testing.T) {
	t.Parallel()
	for i, b := range CommitBounds() {
		if b <= 0 || (i > 0 && b <= CommitBounds()[i-1]) {
			t.Fatalf("CommitBounds %v: not positive and increasing", CommitBounds())
		}
	}
	db, _ := openTestDB(t, Options{})
	ctx := context.Background()
	if s := db.CommitStats(); s.Commits != 0 || s.Writes != 0 || s.Pages != 0 || s.Seconds != 0 {
		t.Fatalf("fresh store: %+v", s)
	}

	for i := range 3 {
		mustAppend(t, db, rec(fmt.Sprintf("seq%d", i), behavior.ProductViewed, t0, "a@example.com"))
	}
	s := db.CommitStats()
	if s.Commits != 3 || s.Writes != 3 {
		t.Errorf("after 3 sequential appends: %d commits, %d writes; want 3, 3", s.Commits, s.Writes)
	}
	// Each commit rewrites at least the pages of the records, the time
	// index, the profile and the meta page's tree roots.
	if s.Pages < 3*3 {
		t.Errorf("after 3 appends: %d pages written", s.Pages)
	}
	if s.Seconds <= 0 {
		t.Errorf("after 3 commits: %v s", s.Seconds)
	}

	const n = 64
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			if _, err := db.Append(ctx, Ingest{Records: []behavior.Record{rec(fmt.Sprintf("par%d", i), behavior.ProductViewed, t0, fmt.Sprintf("u%d@example.com", i))}}); err != nil {
				t.Error(err)
			}
		})
	}
	// Fails inside a shared transaction: the others commit without it and
	// it runs alone, outside the group commit.
	wg.Go(func() {
		if _, err := db.EnqueueJobs(ctx, JobSpec{}); !errors.Is(err, ErrInvalid) {
			t.Errorf("bad enqueue: %v", err)
		}
	})
	wg.Wait()
	after := db.CommitStats()
	writes, commits := after.Writes-s.Writes, after.Commits-s.Commits
	if writes != n {
		t.Errorf("%d concurrent appends counted as %d writes", n, writes)
	}
	if commits == 0 || commits > n {
		t.Errorf("%d concurrent appends took %d commits", n, commits)
	}
	if after.Pages <= s.Pages || after.Seconds <= s.Seconds {
		t.Errorf("pages %d → %d, seconds %v → %v: not counted", s.Pages, after.Pages, s.Seconds, after.Seconds)
	}
	var inBuckets uint64
	for _, c := range after.Buckets {
		inBuckets += c
	}
	if inBuckets != after.Commits {
		t.Errorf("buckets hold %d commits, want %d (%v)", inBuckets, after.Commits, after.Buckets)
	}
}
