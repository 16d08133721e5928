package storage

import (
	"context"
	"errors"
	"path/filepath"
	"testing"
	"time"

	"github.com/nudge-email/nudge/behavior"
)

// TestInsightsModelRoundTrip saves, replaces and reads the insights fit,
// and survives a reopen.
func TestInsightsModelRoundTrip(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), FileName)
	db, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.InsightsModel(ctx); !errors.Is(err, ErrNotFound) {
		t.Fatalf("empty store: %v, want ErrNotFound", err)
	}
	at := time.Date(2026, 5, 1, 3, 4, 5, 6, time.UTC)
	for i, data := range [][]byte{[]byte("first"), make([]byte, 100_000)} {
		if err := db.PutInsightsModel(ctx, InsightsModel{FittedAt: at.Add(time.Duration(i) * time.Hour), Data: data}); err != nil {
			t.Fatal(err)
		}
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	db, err = Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	m, err := db.InsightsModel(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !m.FittedAt.Equal(at.Add(time.Hour)) || len(m.Data) != 100_000 {
		t.Fatalf("got fitted at %v, %d bytes", m.FittedAt, len(m.Data))
	}
}

// TestSetScoresBatch writes several profiles' scores in one call, skipping
// an unknown profile, as SetScores would one by one.
func TestSetScoresBatch(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db, err := Open(filepath.Join(t.TempDir(), FileName), Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	at := time.Date(2026, 5, 1, 0, 0, 0, 0, time.UTC)
	var ids []string
	for _, email := range []string{"a@example.com", "b@example.com"} {
		res, err := db.Append(ctx, Ingest{Records: []behavior.Record{{ID: "r-" + email, Kind: behavior.OrderPlaced, Source: "test", At: at, Email: email}}})
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, res.Profiles["r-"+email])
	}
	scoredAt := at.Add(time.Hour)
	done, err := db.SetScoresBatch(ctx, []ScoreUpdate{
		{ProfileID: ids[0], Scores: map[string]float64{"p_alive": 0.5}, Segment: "new", At: scoredAt},
		{ProfileID: "nobody", Scores: map[string]float64{"p_alive": 1}, Segment: "loyal", At: scoredAt},
		{ProfileID: ids[1], Scores: map[string]float64{"p_alive": 0.25}, Segment: "lapsed", At: scoredAt},
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(done) != 3 || !done[0] || done[1] || !done[2] {
		t.Fatalf("written %v, want [true false true]", done)
	}
	for i, want := range []struct {
		pa  float64
		seg string
	}{{0.5, "new"}, {0.25, "lapsed"}} {
		p, err := db.Profile(ctx, ids[i])
		if err != nil {
			t.Fatal(err)
		}
		if p.Scores["p_alive"] != want.pa || p.Segment != want.seg || !p.ScoredAt.Equal(scoredAt) {
			t.Errorf("profile %d: scores %v segment %q scored at %v", i, p.Scores, p.Segment, p.ScoredAt)
		}
	}
}
