package storage

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"time"

	bolt "go.etcd.io/bbolt"
)

// pruneChunk is how many entries one Prune write transaction removes, so
// pruning a large history never holds the writer lock for long and
// webhooks keep being acknowledged meanwhile.
const pruneChunk = 1000

// pruneMarkPrefix starts the meta keys "prune_mark:" | u64 ns → u64 job
// sequence: the job id high-water mark at the time of a Prune, which later
// tells which unique keys belong to jobs created before a cutoff.
const pruneMarkPrefix = "prune_mark:"

// Prune removes records (with their indexes and raw deliveries) that
// occurred and were received before cutoff, raw deliveries received
// before cutoff, the rendered messages of sends settled before cutoff,
// product_views entries last touched before cutoff, and unique keys of
// finished jobs created before cutoff. It returns how many records went.
//
// Job ids carry no time, so Prune leaves itself a mark (time → job id
// high-water mark) each run; a later Prune whose cutoff is past a mark may
// drop unique keys of gone jobs up to that mark. The first Prune drops none.
// Profiles keep their facts (counts, totals): they summarize the pruned
// history rather than point into it.
func (db *DB) Prune(ctx context.Context, cutoff time.Time) (int, error) {
	n, err := db.pruneRecords(ctx, cutoff)
	if err != nil {
		return n, fmt.Errorf("storage: prune records: %w", err)
	}
	if err := db.pruneDeliveries(ctx, cutoff); err != nil {
		return n, fmt.Errorf("storage: prune deliveries: %w", err)
	}
	if err := db.pruneMessages(ctx, cutoff); err != nil {
		return n, fmt.Errorf("storage: prune messages: %w", err)
	}
	end := boundKey(cutoff)
	err = db.pruneKeys(ctx, bucketProductViews, func(_ *bolt.Tx, _, v []byte) bool {
		return len(v) == 8 && bytes.Compare(v, end) < 0
	})
	if err != nil {
		return n, fmt.Errorf("storage: prune product views: %w", err)
	}
	if err := db.pruneJobUniqueKeys(ctx, cutoff); err != nil {
		return n, fmt.Errorf("storage: prune job unique keys: %w", err)
	}
	return n, nil
}

// pruneRecords deletes the records that both occurred and were received
// before cutoff, oldest first, pruneChunk per transaction, and returns how
// many went. Receipt counts because an import backfills history that is
// older than the retention by design (a customer's orders of two years
// ago feed the models and win-back rules): pruning by occurrence alone
// would delete a backfill at the next start, and re-importing it would
// import it all again. A backfill is kept for the retention after it was
// imported, as webhooks are after they arrived.
//
// Candidates are found in read transactions (decoding only received_at),
// so a large backfill that must stay costs a daily scan, not time holding
// the writer.
func (db *DB) pruneRecords(ctx context.Context, cutoff time.Time) (int, error) {
	end := boundKey(cutoff)
	var from []byte // the next rec_by_time key to look at; nil: the first
	total := 0
	for {
		var keys [][]byte
		done := false
		err := db.view(ctx, func(tx *bolt.Tx) error {
			records := tx.Bucket(bucketRecords)
			c := tx.Bucket(bucketRecByTime).Cursor()
			k, v := c.First()
			if from != nil {
				k, v = c.Seek(from)
			}
			for looked := 0; k != nil && len(keys) < pruneChunk && looked < pruneScan; k, v = c.Next() {
				if len(k) < 8 || bytes.Compare(k[:8], end) >= 0 {
					break
				}
				looked++
				id := recordIDOfTimeEntry(k, v)
				if id == nil || receivedBefore(records.Get(id), cutoff) {
					keys = append(keys, bytes.Clone(k))
				}
			}
			if len(k) < 8 || bytes.Compare(k[:8], end) >= 0 {
				done = true
			} else {
				from = bytes.Clone(k)
			}
			return nil
		})
		if err != nil {
			return total, err
		}
		n, err := db.deleteRecordsByTime(ctx, keys, cutoff)
		total += n
		if err != nil || done {
			return total, err
		}
	}
}

// settledSendStatuses are the states a send does not leave to be
// delivered again: its rendered message has no further use in sending.
func settledSendStatuses() []string {
	return []string{SendSent, SendDead, SendUnknown, SendHeld, SendSkipped}
}

// pruneMessages deletes the rendered messages of sends in a settled state
// that were last updated before cutoff. A message holds what the records
// of its time held (the address, names, cart items), so it goes with them;
// the send itself (status, times, engagement) stays for the rule's
// counts. Sends are found through the status index (status | updated ns |
// id), so only the old part of each status is walked.
func (db *DB) pruneMessages(ctx context.Context, cutoff time.Time) error {
	for _, status := range settledSendStatuses() {
		prefix := join([]byte(status), nil)
		end := append(bytes.Clone(prefix), timeKey(cutoff)...)
		err := db.pruneRange(ctx, bucketSendsByStatus, prefix,
			func(k []byte) bool { return !bytes.HasPrefix(k, prefix) || bytes.Compare(k, end) >= 0 },
			func(tx *bolt.Tx, k, _ []byte) bool {
				return len(k) > len(prefix)+8 && tx.Bucket(bucketMessages).Get(k[len(prefix)+8:]) != nil
			},
			func(tx *bolt.Tx, k []byte) error {
				if tx.Bucket(bucketSendsByStatus).Get(k) == nil {
					return nil // updated since the scan: not settled that long ago
				}
				return tx.Bucket(bucketMessages).Delete(k[len(prefix)+8:])
			})
		if err != nil {
			return err
		}
	}
	return nil
}

// pruneScan bounds the rec_by_time entries one read transaction of
// pruneRecords looks at, so a backfill that must stay is scanned in
// pieces rather than in one long read.
const pruneScan = 20 * pruneChunk

// receivedBefore reports whether a stored record (nil: gone) was received
// before cutoff. A record without a receipt time counts as received.
func receivedBefore(v []byte, cutoff time.Time) bool {
	if v == nil {
		return true // only its index entry is left
	}
	var sr struct {
		R struct {
			ReceivedAt time.Time `json:"received_at"`
		} `json:"r"`
	}
	if err := json.Unmarshal(v, &sr); err != nil {
		return false // leave what cannot be read to the consistency check
	}
	return sr.R.ReceivedAt.Before(cutoff)
}

// deleteRecordsByTime deletes the records of rec_by_time keys, with
// their indexes, in one write transaction; a record received since
// cutoff (checked again under the writer) stays.
func (db *DB) deleteRecordsByTime(ctx context.Context, keys [][]byte, cutoff time.Time) (int, error) {
	if len(keys) == 0 {
		return 0, nil
	}
	n := 0
	err := db.update(ctx, func(tx *bolt.Tx) error {
		n = 0
		byTime := tx.Bucket(bucketRecByTime)
		for _, k := range keys {
			id := recordIDOfTimeEntry(k, byTime.Get(k))
			if id == nil {
				if err := byTime.Delete(k); err != nil {
					return err
				}
				continue
			}
			sr, ok, err := getRecordTx(tx, id)
			if err != nil {
				return err
			}
			if ok && !sr.R.ReceivedAt.Before(cutoff) {
				continue
			}
			if err := byTime.Delete(k); err != nil {
				return err
			}
			if !ok {
				continue
			}
			if err := deleteRecordTx(tx, sr); err != nil {
				return err
			}
			if sr.P != "" {
				pid := sr.P
				if live, ok := resolveProfileTx(tx, pid); ok {
					pid = live
				}
				if err := tx.Bucket(bucketRecByProfile).Delete(recByProfileKey(pid, sr.R.At, sr.R.ID)); err != nil {
					return err
				}
			}
			n++
		}
		return nil
	})
	return n, err
}

// pruneDeliveries removes raw deliveries received before cutoff, also
// those whose records are gone or that came with none.
func (db *DB) pruneDeliveries(ctx context.Context, cutoff time.Time) error {
	return db.pruneKeysWith(ctx, bucketDeliveries, func(tx *bolt.Tx, _, v []byte) bool {
		d, err := parseDelivery(v)
		return err == nil && d.ReceivedAt.Before(cutoff)
	}, deleteDeliveryTx)
}

// pruneKeys deletes the entries of bucket for which drop says so, deciding
// in short read transactions and deleting in chunked write transactions.
func (db *DB) pruneKeys(ctx context.Context, bucket []byte, drop func(tx *bolt.Tx, k, v []byte) bool) error {
	return db.pruneKeysWith(ctx, bucket, drop, func(tx *bolt.Tx, k []byte) error { return tx.Bucket(bucket).Delete(k) })
}

// pruneKeysWith is pruneKeys with the deletion of one key given, for
// entries that own values elsewhere.
func (db *DB) pruneKeysWith(ctx context.Context, bucket []byte, drop func(tx *bolt.Tx, k, v []byte) bool, del func(tx *bolt.Tx, k []byte) error) error {
	return db.pruneRange(ctx, bucket, nil, nil, drop, del)
}

// pruneRange is pruneKeysWith over the keys from `from` until stop(k)
// (see pageScan).
func (db *DB) pruneRange(ctx context.Context, bucket, from []byte, stop func(k []byte) bool, drop func(tx *bolt.Tx, k, v []byte) bool, del func(tx *bolt.Tx, k []byte) error) error {
	var batch [][]byte
	flush := func() error {
		if len(batch) == 0 {
			return nil
		}
		err := db.update(ctx, func(tx *bolt.Tx) error {
			for _, k := range batch {
				if err := del(tx, k); err != nil {
					return err
				}
			}
			return nil
		})
		batch = batch[:0]
		return err
	}
	err := pageScan(ctx, db, bucket, from, stop,
		func(tx *bolt.Tx, k, v []byte) ([]byte, bool, error) {
			if drop(tx, k, v) {
				return bytes.Clone(k), true, nil
			}
			return nil, false, nil
		},
		func(k []byte) error {
			batch = append(batch, k)
			if len(batch) >= pruneChunk {
				return flush()
			}
			return nil
		})
	if err != nil {
		return err
	}
	return flush()
}

// pruneJobUniqueKeys drops unique keys of jobs that are gone and were
// created before the latest prune mark not after cutoff, then leaves a new
// mark.
func (db *DB) pruneJobUniqueKeys(ctx context.Context, cutoff time.Time) error {
	var limit uint64
	var have bool
	err := db.update(ctx, func(tx *bolt.Tx) error {
		meta := tx.Bucket(bucketMeta)
		prefix := []byte(pruneMarkPrefix)
		end := append(bytes.Clone(prefix), boundKey(cutoff)...)
		var old [][]byte
		c := meta.Cursor()
		for k, v := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix) && bytes.Compare(k, end) <= 0; k, v = c.Next() {
			limit, have = binary.BigEndian.Uint64(v), true
			old = append(old, bytes.Clone(k))
		}
		// Keep only the newest usable mark; older ones can never matter.
		if len(old) > 0 {
			old = old[:len(old)-1]
		}
		for _, k := range old {
			if err := meta.Delete(k); err != nil {
				return err
			}
		}
		mark := append(bytes.Clone(prefix), timeKey(db.now())...)
		return meta.Put(mark, u64(tx.Bucket(bucketJobs).Sequence()))
	})
	if err != nil || !have {
		return err
	}
	return db.pruneKeys(ctx, bucketJobUnique, func(tx *bolt.Tx, _, v []byte) bool {
		if len(v) != 8 {
			return false
		}
		id := binary.BigEndian.Uint64(v)
		return id <= limit && tx.Bucket(bucketJobs).Get(v) == nil
	})
}

// Backup writes a consistent snapshot of the store to w. It runs in one
// read transaction, so writers continue meanwhile; the snapshot is a
// complete bbolt file.
func (db *DB) Backup(ctx context.Context, w io.Writer) (int64, error) {
	var n int64
	err := db.view(ctx, func(tx *bolt.Tx) error {
		var err error
		n, err = tx.WriteTo(w)
		return err
	})
	if err != nil {
		return n, fmt.Errorf("storage: backup: %w", err)
	}
	return n, nil
}

// Stats counts what the store holds. Counting reads every leaf page of
// the counted buckets, values included; countKeys (mapped.go) does it in
// chunks that release the mapped pages, so a count does not leave the
// file resident in the process.
func (db *DB) Stats(ctx context.Context) (Stats, error) {
	var s Stats
	for _, c := range []struct {
		n      *int
		bucket []byte
	}{
		{&s.Records, bucketRecords}, {&s.Profiles, bucketProfiles}, {&s.Products, bucketCatalog},
		{&s.Journeys, bucketJourneys}, {&s.Sends, bucketSends}, {&s.Suppressions, bucketSuppressions},
		{&s.Deliveries, bucketDeliveries},
	} {
		n, err := db.countKeys(ctx, c.bucket)
		if err != nil {
			return Stats{}, fmt.Errorf("storage: stats: %w", err)
		}
		*c.n = n
	}
	if fi, err := os.Stat(db.path); err == nil {
		s.FileBytes = fi.Size()
	} else if err := db.view(ctx, func(tx *bolt.Tx) error { s.FileBytes = tx.Size(); return nil }); err != nil {
		return Stats{}, fmt.Errorf("storage: stats: %w", err)
	}
	return s, nil
}
