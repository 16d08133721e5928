package storage

import (
	"bytes"
	"context"
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"
)

// MappedReleaser is implemented by stores that memory-map their file (the
// bbolt DB); see (*DB).ReleaseMapped.
type MappedReleaser interface {
	ReleaseMapped(ctx context.Context) error
}

var _ MappedReleaser = (*DB)(nil)

// ReleaseMapped drops this process's page-table entries for the store's
// memory-mapped file, on Linux (elsewhere it does nothing).
//
// bbolt reads through a shared read-only mapping of the whole file, and
// every page a read touches stays mapped into the process — with its
// neighbours: a fault on a file mapping maps up to 64 KiB of cached pages
// around it (the kernel's fault-around). The kernel counts those pages as
// resident (RssFile) until memory runs short, so one scan of a 2 GB store
// leaves the process at 2 GB RSS although they are clean page cache, and
// a server reading random profiles gains megabytes of RSS per request.
// madvise(MADV_DONTNEED) on a shared file mapping only unmaps them from
// this process: the page cache keeps the data, and the next read maps
// the page again (a minor fault, no I/O while the cache holds it). Values
// a transaction has read stay valid: the address still reads the same
// page of the file.
//
// It runs inside a read transaction: bbolt holds its mmap lock for every
// open read transaction, so the mapping cannot be replaced (remapped to a
// larger size) while the advice is given.
func (db *DB) ReleaseMapped(ctx context.Context) error {
	if !releaseSupported {
		return nil
	}
	err := db.view(ctx, func(tx *bolt.Tx) error {
		addr := db.bolt.Info().Data
		size, ok := mappedSize(addr)
		if !ok {
			// Every page of this transaction lies inside the mapping.
			size = uintptr(tx.Size())
		}
		return releaseMapping(addr, size)
	})
	if err != nil {
		return fmt.Errorf("storage: release mapped pages: %w", err)
	}
	return nil
}

// BoundMapped keeps the store's resident mapped pages under about limit
// bytes until ctx ends. It reads how many file pages the process has
// resident (one read of /proc/self/statm, counters the kernel keeps) and,
// when they exceed by more than limit what remained after the last
// release (the executable's own pages, other files), calls ReleaseMapped.
// It checks every maxInterval while little is mapped, and down to every
// 5 ms while a scan maps pages fast (a prune or a refit maps a gigabyte a
// second). A server runs it for its lifetime. On systems without
// ReleaseMapped it returns at once.
func (db *DB) BoundMapped(ctx context.Context, limit int64, maxInterval time.Duration) {
	const minInterval = 5 * time.Millisecond
	if !releaseSupported {
		return
	}
	base, ok := residentFileBytes()
	if !ok {
		return
	}
	maxInterval = max(maxInterval, minInterval)
	interval, prev := minInterval, base // a server's start reads a lot
	t := time.NewTimer(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		n, ok := residentFileBytes()
		switch {
		case !ok:
		case n-base > limit:
			if err := db.ReleaseMapped(ctx); err != nil {
				if ctx.Err() == nil {
					db.opts.Logger.Warn("storage: releasing mapped pages failed", "error", err)
				}
				return
			}
			if after, ok := residentFileBytes(); ok {
				base, n = after, after
			}
			interval = minInterval
		case n-prev > limit/8:
			interval = max(minInterval, interval/2) // mapping fast: look sooner
		default:
			interval = min(maxInterval, interval*2)
		}
		prev = n
		t.Reset(interval)
	}
}

// countChunk is how many keys countKeys reads per read transaction.
const countChunk = 4096

// countKeys counts a bucket's keys countChunk at a time, each chunk in its
// own read transaction followed by ReleaseMapped. bbolt keeps no counts:
// counting reads every leaf page of the bucket, values included (they are
// stored inline), so counting the records of a 2 GB store in one go, as
// Bucket.Stats did, mapped the whole file into the process (1.7 GB of RSS
// after one /metrics scrape). Chunks see successive snapshots: under
// concurrent writes the count is approximate, as any count is by the time
// it is shown.
func (db *DB) countKeys(ctx context.Context, name []byte) (int, error) {
	n := 0
	var last []byte
	for {
		done := false
		err := db.view(ctx, func(tx *bolt.Tx) error {
			c := tx.Bucket(name).Cursor()
			var k []byte
			if last == nil {
				k, _ = c.First()
			} else if k, _ = c.Seek(last); k != nil && bytes.Equal(k, last) {
				k, _ = c.Next()
			}
			i := 0
			for ; k != nil && i < countChunk; k, _ = c.Next() {
				i++
				last = append(last[:0], k...)
			}
			n += i
			done = k == nil
			return nil
		})
		if err != nil {
			return 0, err
		}
		if releaseSupported {
			if err := db.ReleaseMapped(ctx); err != nil {
				return 0, err
			}
		}
		if done {
			return n, nil
		}
	}
}
