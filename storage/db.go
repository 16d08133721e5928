package storage

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	json "github.com/goccy/go-json"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"sync"
	"time"

	bolt "go.etcd.io/bbolt"
	bolterrors "go.etcd.io/bbolt/errors"

	"github.com/nudge-email/nudge/clock"
)

// Bucket names, one per access path (DESIGN §4). Every bucket is created
// by Open, so code running inside a transaction can assume it exists.
var (
	bucketMeta = []byte("meta")
	// records: record id → stored record (JSON).
	bucketRecords = []byte("records")
	// rec_by_time: u64 occurred-at ns | record id → nil.
	bucketRecByTime = []byte("rec_by_time")
	// rec_by_profile: profile id | 0x00 | u64 occurred-at ns | record id → nil.
	bucketRecByProfile = []byte("rec_by_profile")
	// deliveries: delivery id → Delivery JSON without its body, whose
	// "body_seq" is the body's key in delivery_bodies and "body_fmt" 1 says
	// the body is framed (see putDeliveryTx in records.go). Files written
	// before delivery_bodies existed hold the JSON, "\n", raw body; or
	// plain Delivery JSON; before framing, no "body_fmt" and a raw body.
	// All still decode.
	bucketDeliveries = []byte("deliveries")
	// delivery_bodies: u64 sequence → the body of a delivery, framed and
	// usually S2-compressed (body.go). Bodies are kilobytes, so each fills
	// overflow pages; a sequential key appends them at the end of the
	// tree, where a random key (the delivery id) would rewrite the
	// neighbouring bodies of a random leaf on every insert.
	bucketDeliveryBodies = []byte("delivery_bodies")
	// profiles: profile id → Profile (JSON).
	bucketProfiles = []byte("profiles")
	// identities: identity key → profile id.
	bucketIdentities = []byte("identities")
	// aliases: merged-away profile id → surviving profile id.
	bucketAliases = []byte("aliases")
	// catalog: product id → Product (JSON).
	bucketCatalog = []byte("catalog")
	// inventory_items: store id | 0x00 | inventory item id → product id |
	// 0x00 | variant id (Shopify inventory levels name only the item).
	bucketInventoryItems = []byte("inventory_items")
	// product_views: product id | 0x00 | profile id → u64 last-seen ns.
	bucketProductViews = []byte("product_views")
	// suppressions: email (or "sha256:" hex of a forgotten email) → Suppression.
	bucketSuppressions = []byte("suppressions")
	// jobs: u64 job id → Job (JSON); completed and cancelled jobs are deleted.
	bucketJobs = []byte("jobs")
	// jobs_due: u64 due ns | u64 job id → nil, for scheduled and retryable jobs.
	bucketJobsDue = []byte("jobs_due")
	// job_unique: unique key → u64 job id; kept after the job finishes so
	// a retried handler cannot enqueue the same work twice.
	bucketJobUnique = []byte("job_unique")
	// journeys: journey id → Journey (JSON).
	bucketJourneys = []byte("journeys")
	// journeys_by_profile: profile id | 0x00 | journey id → nil.
	bucketJourneysByProfile = []byte("journeys_by_profile")
	// journeys_by_rule: rule id | 0x00 | journey id → nil.
	bucketJourneysByRule = []byte("journeys_by_rule")
	// decisions: profile id | 0x00 | u64 ns | seq → Decision (JSON).
	bucketDecisions = []byte("decisions")
	// sends: send id → Send (JSON) without its message.
	bucketSends = []byte("sends")
	// messages: send id → the send's rendered message, as the sender gave
	// it. Apart from the send because a send is rewritten at every status
	// change and engagement event (sending, sent, delivered, opened,
	// clicked…), its message never after it is created: kept inline, each
	// of those writes copied the message again. Sends written by earlier
	// versions hold it inline, and still read.
	bucketMessages = []byte("messages")
	// sends_by_profile: profile id | 0x00 | u64 created ns | send id → nil.
	bucketSendsByProfile = []byte("sends_by_profile")
	// sends_by_status: status | 0x00 | u64 updated ns | send id → nil.
	bucketSendsByStatus = []byte("sends_by_status")
	// sends_by_provider_id: provider message id → send id.
	bucketSendsByProviderID = []byte("sends_by_provider_id")
)

func allBuckets() [][]byte {
	return [][]byte{
		bucketMeta, bucketRecords, bucketRecByTime, bucketRecByProfile, bucketDeliveries, bucketDeliveryBodies,
		bucketProfiles, bucketIdentities, bucketAliases, bucketCatalog, bucketInventoryItems, bucketProductViews,
		bucketSuppressions, bucketJobs, bucketJobsDue, bucketJobUnique, bucketJourneys,
		bucketJourneysByProfile, bucketJourneysByRule, bucketDecisions, bucketSends,
		bucketSendsByProfile, bucketSendsByStatus, bucketSendsByProviderID, bucketMessages,
	}
}

// Options tune the bbolt store.
type Options struct {
	// MaxBatchDelay is the longest the group commit holds a group open
	// for more writes, and only while commits run back to back (see
	// committer): a lone write never waits. 0 means the default, 2 ms; a
	// negative value never holds.
	MaxBatchDelay time.Duration
	// MaxBatchSize caps how many calls one group commit takes (default 1000).
	MaxBatchSize int
	// KeepRaw stores raw deliveries passed to Append.
	KeepRaw bool
	// Clock stamps received-at and job times (default clock.Real).
	Clock clock.Clock
	// Logger (default slog.Default()).
	Logger *slog.Logger
	// LockTimeout is how long Open waits for another process to release
	// the file (default 5 s); bbolt allows one writer process.
	LockTimeout time.Duration
	// NoSync skips fsync: only for benchmarks that measure the baseline.
	NoSync bool
}

// bbolt tuning for the webhook path (see Open).
const (
	initialMmapSize = 1 << 30
	allocSize       = 64 << 20
	// appendFillPercent packs the pages of buckets whose keys arrive in
	// order (jobs by id, due times, delivery bodies): bbolt's default 0.5
	// leaves every page half empty there (measured: the jobs bucket takes
	// 44 % fewer pages). Not rec_by_time: occurred-at times arrive out of
	// order often enough (imports, late webhooks) that packed pages split.
	appendFillPercent = 0.9
)

// appendBucket returns a bucket written mostly at its end, packed densely.
func appendBucket(tx *bolt.Tx, name []byte) *bolt.Bucket {
	b := tx.Bucket(name)
	b.FillPercent = appendFillPercent
	return b
}

// DB is the bbolt implementation of Store.
type DB struct {
	bolt     *bolt.DB
	opts     Options
	path     string
	commit   committer
	profiles profileCache
	bodyBufs sync.Pool // frame buffers of raw bodies; see encodeBody
}

// FileName is the store's file inside the data dir.
const FileName = "nudge.db"

// OpenDir opens (creating) the store in dataDir/nudge.db.
func OpenDir(dataDir string, opts Options) (*DB, error) {
	if err := os.MkdirAll(dataDir, 0o700); err != nil {
		return nil, fmt.Errorf("storage: create data dir: %w", err)
	}
	return Open(filepath.Join(dataDir, FileName), opts)
}

// Open opens (creating) the bbolt file at path.
func Open(path string, opts Options) (*DB, error) {
	if opts.MaxBatchDelay == 0 {
		opts.MaxBatchDelay = 2 * time.Millisecond
	}
	if opts.MaxBatchSize <= 0 {
		opts.MaxBatchSize = 1000
	}
	if opts.Clock == nil {
		opts.Clock = clock.Real{}
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.LockTimeout <= 0 {
		opts.LockTimeout = 5 * time.Second
	}
	// The freelist is persisted (bbolt's default): with NoFreelistSync every
	// open walks every page of the file to rebuild it, which made a 2 GB
	// store resident at start (2.4 GB RSS against 3 MB; bench/README.md).
	bo := &bolt.Options{Timeout: opts.LockTimeout, FreelistType: bolt.FreelistMapType}
	if runtime.GOOS != "windows" && strconv.IntSize == 64 {
		// Map 1 GiB up front: growing the map mid-transaction makes bbolt
		// copy every node the transaction has touched out of the old map
		// and fault the file's pages in again, a stall of the single
		// writer each time the file doubles. It is address space, not
		// memory; Windows would grow the file to the map size instead.
		bo.InitialMmapSize = initialMmapSize
	}
	b, err := bolt.Open(path, 0o600, bo)
	if err != nil {
		return nil, fmt.Errorf("storage: open %s: %w", path, err)
	}
	b.NoSync = opts.NoSync
	// Each time the file outgrows itself bbolt truncates and fsyncs it,
	// stalling the writer; grow in larger steps than the default 16 MiB.
	b.AllocSize = allocSize
	err = b.Update(func(tx *bolt.Tx) error {
		for _, name := range allBuckets() {
			if _, err := tx.CreateBucketIfNotExists(name); err != nil {
				return fmt.Errorf("create bucket %s: %w", name, err)
			}
		}
		return nil
	})
	if err != nil {
		_ = b.Close()
		return nil, fmt.Errorf("storage: init %s: %w", path, err)
	}
	return &DB{bolt: b, opts: opts, path: path}, nil
}

// Path is the file the store lives in.
func (db *DB) Path() string { return db.path }

// Close closes the file; bbolt waits for open transactions and pending
// batches first.
func (db *DB) Close() error {
	if err := db.bolt.Close(); err != nil {
		return fmt.Errorf("storage: close: %w", err)
	}
	return nil
}

// Check runs bbolt's consistency check, returning every problem found.
func (db *DB) Check() error {
	return db.bolt.View(func(tx *bolt.Tx) error {
		var errs []error
		for err := range tx.Check() {
			errs = append(errs, err)
		}
		if len(errs) > 0 {
			return fmt.Errorf("storage: check: %d problems, first: %w", len(errs), errs[0])
		}
		return nil
	})
}

func (db *DB) now() time.Time { return db.opts.Clock.Now().UTC() }

// view runs a read transaction after checking ctx.
func (db *DB) view(ctx context.Context, fn func(tx *bolt.Tx) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	return closedErr(db.bolt.View(fn))
}

// closedErr maps bbolt's "database not open" to ErrClosed, so callers of
// a closed store can test for it without importing bbolt.
func closedErr(err error) error {
	if errors.Is(err, bolterrors.ErrDatabaseNotOpen) {
		return fmt.Errorf("%w: %w", ErrClosed, err)
	}
	return err
}

// update runs a write transaction after checking ctx.
func (db *DB) update(ctx context.Context, fn func(tx *bolt.Tx) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	return closedErr(db.bolt.Update(fn))
}

// batch runs fn in a group commit shared with concurrent callers. fn may
// run more than once, so it must not change state outside the transaction
// except by overwriting.
func (db *DB) batch(ctx context.Context, fn func(tx *bolt.Tx) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	return closedErr(db.runBatched(fn))
}

// patientBatch is batch for a write made ahead of need, which waits a
// little for another write to share a commit with (see
// commitCall.patient).
func (db *DB) patientBatch(ctx context.Context, fn func(tx *bolt.Tx) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	return closedErr(db.runQueued(&commitCall{fn: fn, err: make(chan error, 1), patient: true}))
}

// batchIngest is batch for Append, whose group commit may be held open
// for more arrivals (see committer).
func (db *DB) batchIngest(ctx context.Context, fn func(tx *bolt.Tx) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	return closedErr(db.runIngestBatched(fn))
}

// u64 encodes v as 8 big-endian bytes, so keys sort numerically.
func u64(v uint64) []byte {
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], v)
	return b[:]
}

// timeKey encodes t as sortable nanoseconds; times before 1970 sort first.
func timeKey(t time.Time) []byte {
	ns := t.UnixNano()
	if ns < 0 {
		ns = 0
	}
	return u64(uint64(ns))
}

// keyTime decodes timeKey.
func keyTime(b []byte) time.Time {
	return time.Unix(0, int64(binary.BigEndian.Uint64(b))).UTC()
}

// join builds a composite key: parts separated by 0x00, so a prefix scan
// on "a\x00" never matches "ab".
func join(parts ...[]byte) []byte {
	n := 0
	for _, p := range parts {
		n += len(p) + 1
	}
	out := make([]byte, 0, n)
	for i, p := range parts {
		if i > 0 {
			out = append(out, 0)
		}
		out = append(out, p...)
	}
	return out
}

// getJSON decodes the value at key into v; it reports false when absent.
func getJSON(b *bolt.Bucket, key []byte, v any) (bool, error) {
	raw := b.Get(key)
	if raw == nil {
		return false, nil
	}
	if err := json.Unmarshal(raw, v); err != nil {
		return true, fmt.Errorf("decode %s: %w", key, err)
	}
	return true, nil
}

// putJSON encodes v at key.
func putJSON(b *bolt.Bucket, key []byte, v any) error {
	raw, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("encode %s: %w", key, err)
	}
	return b.Put(key, raw)
}
