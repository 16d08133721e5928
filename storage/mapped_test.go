package storage

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
)

// rssFileKB reads RssFile from /proc/self/status.
func rssFileKB(t *testing.T) int {
	t.Helper()
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "RssFile:"); ok {
			n, err := strconv.Atoi(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")))
			if err != nil {
				t.Fatal(err)
			}
			return n
		}
	}
	t.Fatal("no RssFile in /proc/self/status")
	return 0
}

// mappedTestDB returns a store, reopened so that none of its file is
// mapped yet, holding 48 MB of values in the bucket "blobs", and a
// function that reads every value through the mapping (returning a
// checksum).
func mappedTestDB(t *testing.T) (*DB, func() uint64) {
	t.Helper()
	if runtime.GOOS != "linux" {
		t.Skip("ReleaseMapped only acts on Linux")
	}
	path := filepath.Join(t.TempDir(), FileName)
	db, err := Open(path, Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	val := bytes.Repeat([]byte("0123456789abcdef"), 3000/16) // ~3 KB: one value per leaf page
	for batch := range 16 {
		err := db.bolt.Update(func(tx *bolt.Tx) error {
			b, err := tx.CreateBucketIfNotExists([]byte("blobs"))
			if err != nil {
				return err
			}
			for i := range 1000 {
				v := append([]byte(fmt.Sprintf("%08d", batch*1000+i)), val...)
				if err := b.Put([]byte(fmt.Sprintf("k%08d", batch*1000+i)), v); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
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
	t.Cleanup(func() { _ = db.Close() })
	scan := func() uint64 {
		var sum uint64
		err := db.bolt.View(func(tx *bolt.Tx) error {
			return tx.Bucket([]byte("blobs")).ForEach(func(_, v []byte) error {
				for i := 0; i < len(v); i += 512 {
					sum = sum*31 + uint64(v[i])
				}
				return nil
			})
		})
		if err != nil {
			t.Fatal(err)
		}
		return sum
	}
	return db, scan
}

// TestReleaseMappedDropsRssFile reads 48 MB of a store through bbolt's
// mapping, which makes the pages resident in the process (RssFile), and
// checks that ReleaseMapped gives them back while the data reads the same
// afterwards — also through a value slice a transaction obtained before
// the release.
func TestReleaseMappedDropsRssFile(t *testing.T) {
	db, scan := mappedTestDB(t)
	ctx := context.Background()
	if err := db.ReleaseMapped(ctx); err != nil {
		t.Fatal(err)
	}
	before := rssFileKB(t)
	sum := scan()
	read := rssFileKB(t)
	if read-before < 32<<10 {
		t.Fatalf("reading 48 MB mapped only %d KB (RssFile %d → %d KB)", read-before, before, read)
	}
	if err := db.ReleaseMapped(ctx); err != nil {
		t.Fatal(err)
	}
	after := rssFileKB(t)
	if after-before > (read-before)/4 {
		t.Fatalf("RssFile %d KB before the scan, %d KB after it, still %d KB after ReleaseMapped", before, read, after)
	}
	if got := scan(); got != sum {
		t.Fatalf("data changed across ReleaseMapped: checksum %d, then %d", sum, got)
	}

	// A value a transaction holds stays readable across a release made
	// meanwhile (the address still reads the same page of the file).
	err := db.bolt.View(func(tx *bolt.Tx) error {
		v := tx.Bucket([]byte("blobs")).Get([]byte("k00012345"))
		want := bytes.Clone(v)
		done := make(chan error, 1)
		go func() { done <- db.ReleaseMapped(ctx) }() // a second read transaction
		if err := <-done; err != nil {
			return err
		}
		if !bytes.Equal(v, want) || !bytes.HasPrefix(v, []byte("00012345")) {
			return fmt.Errorf("value changed across ReleaseMapped: %.20q", v)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("RssFile: %d KB before, %d KB after reading 48 MB, %d KB after ReleaseMapped", before, read, after)
}

// TestBoundMappedReleasesDuringScans runs BoundMapped with a small limit
// while scans map the whole store, and checks that the resident pages are
// given back without any explicit call.
func TestBoundMappedReleasesDuringScans(t *testing.T) {
	db, scan := mappedTestDB(t)
	ctx, cancel := context.WithCancel(context.Background())
	if err := db.ReleaseMapped(ctx); err != nil {
		t.Fatal(err)
	}
	before := rssFileKB(t)
	done := make(chan struct{})
	go func() {
		defer close(done)
		db.BoundMapped(ctx, 8<<20, 20*time.Millisecond)
	}()
	defer func() { cancel(); <-done }()
	for range 3 {
		scan()
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		now := rssFileKB(t)
		if now-before < 16<<10 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("RssFile %d KB before the scans, still %d KB 5 s after them with a bound of 8 MB", before, now)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestReleaseMappedClosed reports ErrClosed on a closed store.
func TestReleaseMappedClosed(t *testing.T) {
	db, err := Open(filepath.Join(t.TempDir(), FileName), Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := db.ReleaseMapped(context.Background()); err != nil {
		t.Fatal(err)
	}
	_ = db.Close()
	if err := db.ReleaseMapped(context.Background()); err == nil {
		t.Fatal("ReleaseMapped on a closed store: no error")
	}
}
