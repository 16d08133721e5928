package storage

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"time"

	bolt "go.etcd.io/bbolt"
)

// Insights is what the insights engine keeps in the store besides profile
// scores: its last fit, so a restart can reuse it instead of reading the
// whole history again, and a way to write many profiles' scores at once.
type Insights interface {
	// InsightsModel returns the fit saved last, ErrNotFound when none is.
	InsightsModel(ctx context.Context) (InsightsModel, error)
	// PutInsightsModel replaces the saved fit.
	PutInsightsModel(ctx context.Context, m InsightsModel) error
	// MarkBackfilled notes that an import stored records at a time.
	MarkBackfilled(ctx context.Context, at time.Time) error
	// SetScoresBatch is SetScores for many profiles in one transaction;
	// profiles that are gone (forgotten meanwhile) are skipped. It reports
	// for each update whether it was written.
	SetScoresBatch(ctx context.Context, updates []ScoreUpdate) ([]bool, error)
}

// InsightsModel is an opaque fit saved by the insights engine. It holds no
// per-person data, so Forget need not touch it.
type InsightsModel struct {
	FittedAt time.Time // the as-of time of the fit
	Data     []byte
	// BackfilledAt is when an import last stored records (MarkBackfilled),
	// zero if none has; read only. A fit older than it misses history.
	BackfilledAt time.Time
}

// ScoreUpdate is one profile's scores for SetScoresBatch.
type ScoreUpdate struct {
	ProfileID string
	Scores    map[string]float64
	Segment   string
	At        time.Time
}

// insights: "model" → u64 fitted-at ns | the model's bytes. The bucket is
// created by the first PutInsightsModel, so files written before it
// existed need no migration.
var (
	bucketInsights = []byte("insights")
	keyInsightsFit = []byte("model")
	// keyBackfilled → u64 ns: when an import last stored records.
	keyBackfilled = []byte("backfilled")
)

// MarkBackfilled notes that an import stored records at at, so the
// insights fit is known to miss them (InsightsModel.BackfilledAt) until
// its next refit: webhooks add history a little at a time, an import all
// at once and often years of it.
func (db *DB) MarkBackfilled(ctx context.Context, at time.Time) error {
	err := db.update(ctx, func(tx *bolt.Tx) error {
		b, err := tx.CreateBucketIfNotExists(bucketInsights)
		if err != nil {
			return err
		}
		return b.Put(keyBackfilled, timeKey(at))
	})
	if err != nil {
		return fmt.Errorf("storage: mark backfilled: %w", err)
	}
	return nil
}

// InsightsModel returns the fit saved last.
func (db *DB) InsightsModel(ctx context.Context) (InsightsModel, error) {
	var m InsightsModel
	err := db.view(ctx, func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketInsights)
		if b == nil {
			return ErrNotFound
		}
		v := b.Get(keyInsightsFit)
		if len(v) < 8 {
			return ErrNotFound
		}
		m = InsightsModel{FittedAt: keyTime(v[:8]), Data: append([]byte(nil), v[8:]...)}
		if bf := b.Get(keyBackfilled); len(bf) == 8 {
			m.BackfilledAt = keyTime(bf)
		}
		return nil
	})
	if err != nil {
		return InsightsModel{}, fmt.Errorf("storage: insights model: %w", err)
	}
	return m, nil
}

// PutInsightsModel replaces the saved fit.
func (db *DB) PutInsightsModel(ctx context.Context, m InsightsModel) error {
	v := append(timeKey(m.FittedAt), m.Data...)
	err := db.update(ctx, func(tx *bolt.Tx) error {
		b, err := tx.CreateBucketIfNotExists(bucketInsights)
		if err != nil {
			return err
		}
		return b.Put(keyInsightsFit, v)
	})
	if err != nil {
		return fmt.Errorf("storage: put insights model: %w", err)
	}
	return nil
}

// SetScoresBatch writes many profiles' scores in one transaction: a refit
// scoring 100,000 profiles one SetScores (and one fsync) at a time holds
// the single writer 100,000 times, in between every webhook.
func (db *DB) SetScoresBatch(ctx context.Context, updates []ScoreUpdate) ([]bool, error) {
	done := make([]bool, len(updates))
	err := db.update(ctx, func(tx *bolt.Tx) error {
		clear(done)
		profiles := tx.Bucket(bucketProfiles)
		for i, u := range updates {
			p, err := getProfileTx(tx, u.ProfileID)
			if errors.Is(err, ErrNotFound) {
				continue
			}
			if err != nil {
				return err
			}
			p.Scores = maps.Clone(u.Scores)
			p.Segment = u.Segment
			p.ScoredAt = u.At.UTC()
			if err := putJSON(profiles, []byte(p.ID), p); err != nil {
				return err
			}
			done[i] = true
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("storage: set scores: %w", err)
	}
	return done, nil
}
