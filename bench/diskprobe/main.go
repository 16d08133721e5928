// Command diskprobe measures how fast a directory's disk makes writes
// durable, the figure nudge's throughput follows: every webhook's 200 and
// every sent email waits for a bbolt commit, which writes its dirty pages
// at scattered offsets and fdatasyncs twice. bench/run.sh prints its
// result above each table, so runs on different disks can be compared.
//
//	go run ./bench/diskprobe -dir /var/lib/nudge
package main

import (
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"time"
)

func main() {
	dir := flag.String("dir", os.TempDir(), "directory on the disk to probe")
	rounds := flag.Int("rounds", 100, "flushes per size")
	flag.Parse()
	res, err := probe(*dir, *rounds, []int{1, 10, 70}, 65536)
	if err != nil {
		fmt.Fprintln(os.Stderr, "diskprobe:", err)
		os.Exit(1)
	}
	fmt.Println(res)
}

// probe writes n random 4 KiB pages of a file of filePages pages (256 MiB
// from main, larger than a disk cache's worth of locality) and fdatasyncs,
// rounds times per n, and reports the median and p99 of each.
func probe(dir string, rounds int, sizes []int, filePages int64) (string, error) {
	f, err := os.CreateTemp(dir, "diskprobe-*")
	if err != nil {
		return "", err
	}
	defer os.Remove(f.Name())
	defer f.Close()
	pages := filePages
	if err := f.Truncate(pages * 4096); err != nil {
		return "", err
	}
	page := make([]byte, 4096)
	for i := range page {
		page[i] = byte(i)
	}
	// Allocate every block first, as a grown bbolt file has them: the
	// probe should time the flush, not the file system allocating holes.
	chunk := make([]byte, 1<<20)
	for off := int64(0); off < pages*4096; off += int64(len(chunk)) {
		if _, err := f.WriteAt(chunk[:min(int64(len(chunk)), pages*4096-off)], off); err != nil {
			return "", err
		}
	}
	if err := f.Sync(); err != nil {
		return "", err
	}
	out := fmt.Sprintf("disk at %s: write+fdatasync of random 4 KiB pages (median / p99 of %d):", filepath.Clean(dir), rounds)
	for _, n := range sizes {
		lat := make([]time.Duration, 0, rounds)
		for range rounds {
			start := time.Now()
			for range n {
				if _, err := f.WriteAt(page, rand.Int64N(pages)*4096); err != nil {
					return "", err
				}
			}
			if err := fdatasync(f); err != nil {
				return "", err
			}
			lat = append(lat, time.Since(start))
		}
		slices.Sort(lat)
		out += fmt.Sprintf(" %d page(s) %.2f / %.2f ms;", n, ms(lat[len(lat)/2]), ms(lat[len(lat)*99/100]))
	}
	return out[:len(out)-1], nil
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
