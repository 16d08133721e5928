// Command memory fills a nudge data dir with a large history — by default
// 1,000,000 behavior records over 100,000 profiles, ten per person (views,
// cart updates, a checkout and an order, spread over the last 300 days)
// — through storage.Append in batches, and reports the fill time, the
// file size and the bytes per record. Like `nudge import` (importer), it
// sets storage.Ingest.EvaluateSince to 24 h before now, so history too old
// to start a journey leaves no evaluation job behind: the filled store is
// what a shop that imported its history holds. bench/memory.sh then
// serves that data dir with `nudge serve` under load and reads its peak
// RSS.
//
//	go run ./bench/memory -dir /tmp/big -records 1000000 -profiles 100000
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/nudge-email/nudge/behavior"
	"github.com/nudge-email/nudge/insights"
	"github.com/nudge-email/nudge/storage"
)

func main() {
	dir := flag.String("dir", "", "data dir to create (required; must not hold a store)")
	records := flag.Int("records", 1_000_000, "records to store")
	profiles := flag.Int("profiles", 100_000, "distinct customers")
	batch := flag.Int("batch", 1000, "records per Append")
	probe := flag.Bool("probe", false, "only open the existing store in -dir and report the RSS each step costs")
	refit := flag.Bool("refit", false, "only run one insights refit over the existing store in -dir (it writes scores, derived records and the saved fit), sampling RSS, and report its peak RssAnon / RssFile and time")
	releaseEvery := flag.Int("release-every", 0, "with -refit: records read between two releases of the mapped file (0 = the engine's default, -1 = never)")
	syncFreelist := flag.Bool("sync-freelist", false, "with -probe: first rewrite the file's freelist (bbolt NoFreelistSync=false), then reopen plainly with bbolt and report RSS: what storage.Open would cost with the freelist persisted")
	flag.Parse()
	if *dir == "" {
		fmt.Fprintln(os.Stderr, "memory: -dir is required")
		os.Exit(2)
	}
	if *refit {
		if err := probeRefit(*dir, *releaseEvery); err != nil {
			fmt.Fprintln(os.Stderr, "memory:", err)
			os.Exit(1)
		}
		return
	}
	if *probe {
		probeFn := probeOpen
		if *syncFreelist {
			probeFn = probeSyncedFreelist
		}
		if err := probeFn(*dir); err != nil {
			fmt.Fprintln(os.Stderr, "memory:", err)
			os.Exit(1)
		}
		return
	}
	if err := fill(*dir, *records, *profiles, *batch); err != nil {
		fmt.Fprintln(os.Stderr, "memory:", err)
		os.Exit(1)
	}
}

// kinds is the ten-record life of one customer.
var kinds = []behavior.Kind{
	behavior.ProductViewed, behavior.ProductViewed, behavior.ProductViewed, behavior.PageViewed,
	behavior.ProductViewed, behavior.CartUpdated, behavior.ProductViewed, behavior.CartUpdated,
	behavior.CheckoutStarted, behavior.OrderPlaced,
}

func fill(dir string, records, profiles, batch int) error {
	path := filepath.Join(dir, storage.FileName)
	if _, err := os.Stat(path); err == nil {
		return fmt.Errorf("%s exists", path)
	}
	db, err := storage.OpenDir(dir, storage.Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		return err
	}
	ctx := context.Background()
	now := time.Now().UTC()
	start := time.Now()
	recs := make([]behavior.Record, 0, batch)
	// The importer's cut-off (importer.batcher.evaluateSince): the journey
	// engine's trigger age.
	evaluateSince := now.Add(-24 * time.Hour)
	flush := func() error {
		if len(recs) == 0 {
			return nil
		}
		_, err := db.Append(ctx, storage.Ingest{Records: recs, EvaluateSince: evaluateSince})
		recs = recs[:0]
		return err
	}
	for i := range records {
		p := i % profiles
		k := kinds[(i/profiles)%len(kinds)]
		at := now.Add(-time.Duration(300*24*(records-i)/records) * time.Hour).Add(-time.Duration(p%3600) * time.Second)
		prod := fmt.Sprintf("p%d", (p*7+i)%2000)
		r := behavior.Record{
			ID: fmt.Sprintf("mem-%d", i), Kind: k, Source: "bench", Store: "main", At: at,
			Email: fmt.Sprintf("m%d@example.com", p), CustomerID: fmt.Sprintf("c%d", p), Currency: "USD",
			URL: "https://example.com/products/" + prod,
		}
		switch k {
		case behavior.ProductViewed, behavior.CartUpdated, behavior.CheckoutStarted, behavior.OrderPlaced:
			r.Items = []behavior.Item{{ProductID: prod, VariantID: prod + "-v", Title: "Product " + prod, Price: 2500, Quantity: 1,
				URL: "https://example.com/products/" + prod, ImageURL: "https://cdn.example.com/" + prod + ".jpg"}}
			r.Value = 2500
		}
		recs = append(recs, r)
		if len(recs) == batch {
			if err := flush(); err != nil {
				return err
			}
		}
		if i > 0 && i%100_000 == 0 {
			fmt.Fprintf(os.Stderr, "%d records (%.0f/s)\n", i, float64(i)/time.Since(start).Seconds())
		}
	}
	if err := flush(); err != nil {
		return err
	}
	st, err := db.Stats(ctx)
	if err != nil {
		return err
	}
	jobs, err := db.CountJobs(ctx)
	if err != nil {
		return err
	}
	if err := db.Close(); err != nil {
		return err
	}
	fi, err := os.Stat(path)
	if err != nil {
		return err
	}
	took := time.Since(start)
	fmt.Printf("filled %d records, %d profiles, %d products in %.1f s (%.0f records/s); file %d MB, %.0f bytes/record; %d evaluation jobs pending\n",
		st.Records, st.Profiles, st.Products, took.Seconds(), float64(st.Records)/took.Seconds(), fi.Size()>>20, float64(fi.Size())/float64(st.Records), jobs[storage.JobScheduled])
	return nil
}

// rssKB reads this process's resident set size from /proc (Linux).
func rssKB() int { return statusKB("VmRSS") }

// statusKB reads one field of /proc/self/status, in KB (-1 if unknown).
func statusKB(field string) int {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return -1
	}
	kb := -1
	for _, line := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(line, field+":") {
			fmt.Sscanf(strings.TrimPrefix(line, field+":"), "%d", &kb)
		}
	}
	return kb
}

// probeRefit runs one insights refit over the store in dir and reports
// its time and the peaks of RssAnon (heap) and RssFile (mapped file
// pages), sampled every 50 ms, with the Go heap in use at the end.
func probeRefit(dir string, releaseEvery int) error {
	db, err := storage.OpenDir(dir, storage.Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		return err
	}
	defer db.Close()
	var st storage.Store = db
	if releaseEvery < 0 {
		st = noRelease{db} // hides ReleaseMapped
	}
	eng := insights.New(st, insights.Options{ReleaseEvery: max(releaseEvery, 0)})
	maxAnon, maxFile, maxRSS := 0, 0, 0 // read after done
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		t := time.NewTicker(50 * time.Millisecond)
		defer t.Stop()
		for {
			a, f, r := statusKB("RssAnon"), statusKB("RssFile"), statusKB("VmRSS")
			maxAnon, maxFile, maxRSS = max(maxAnon, a), max(maxFile, f), max(maxRSS, r)
			select {
			case <-stop:
				return
			case <-t.C:
			}
		}
	}()
	start := time.Now()
	rep, err := eng.Refit(context.Background(), time.Now())
	took := time.Since(start)
	close(stop)
	<-done
	if err != nil {
		return err
	}
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	fmt.Printf("refit of %d profiles, %d records in %.1f s: peak RSS %d MB (sampled peaks RssAnon %d MB, RssFile %d MB; VmHWM %d MB); heap in use after %d MB; scored %d, derived %v\n",
		rep.Profiles, rep.Records, took.Seconds(), maxRSS>>10, maxAnon>>10, maxFile>>10, statusKB("VmHWM")>>10, ms.HeapInuse>>20, rep.Scored, rep.Derived)
	return nil
}

// noRelease is a store whose mapped pages the refit cannot release.
type noRelease struct{ storage.Store }

// probeOpen shows which step of opening a large store makes it resident.
func probeOpen(dir string) error {
	fmt.Printf("start: RSS %d MB\n", rssKB()>>10)
	t := time.Now()
	db, err := storage.OpenDir(dir, storage.Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		return err
	}
	defer db.Close()
	fmt.Printf("storage.OpenDir: RSS %d MB (%.1f s)\n", rssKB()>>10, time.Since(t).Seconds())
	t = time.Now()
	st, err := db.Stats(context.Background())
	if err != nil {
		return err
	}
	fmt.Printf("Stats (%d records): RSS %d MB (%.1f s)\n", st.Records, rssKB()>>10, time.Since(t).Seconds())
	t = time.Now()
	c, err := db.CountJobs(context.Background())
	if err != nil {
		return err
	}
	fmt.Printf("CountJobs %v: RSS %d MB (%.1f s)\n", c, rssKB()>>10, time.Since(t).Seconds())
	return nil
}

// probeSyncedFreelist measures opening the store in dir with bbolt's
// freelist persisted (NoFreelistSync=false, bbolt's default), which
// storage.Open does not do today. The first run persists the freelist and
// exits; run it again, in a fresh process, to read the RSS of the open.
func probeSyncedFreelist(dir string) error {
	path := filepath.Join(dir, storage.FileName)
	opts := &bolt.Options{FreelistType: bolt.FreelistMapType, NoFreelistSync: false}
	t := time.Now()
	b, err := bolt.Open(path, 0o600, opts)
	if err != nil {
		return err
	}
	defer b.Close()
	var persisted bool
	_ = b.View(func(tx *bolt.Tx) error {
		persisted = tx.Bucket([]byte("meta")).Get([]byte("bench_freelist_synced")) != nil
		return nil
	})
	if !persisted {
		err := b.Update(func(tx *bolt.Tx) error {
			return tx.Bucket([]byte("meta")).Put([]byte("bench_freelist_synced"), []byte("1"))
		})
		if err != nil {
			return err
		}
		fmt.Println("freelist persisted; run the same command again to measure the open")
		return nil
	}
	fmt.Printf("bbolt open with a persisted freelist: RSS %d MB (%.2f s)\n", rssKB()>>10, time.Since(t).Seconds())
	return nil
}
