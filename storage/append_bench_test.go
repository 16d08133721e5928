package storage

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nudge-email/nudge/behavior"
)

// benchAppendParallel measures the webhook path: ~64 concurrent Appends,
// each one order record with its ~27 KB raw Shopify delivery, sharing
// fsyncs through group commit.
func benchAppendParallel(b *testing.B, noSync, keepRaw bool) {
	body, err := os.ReadFile(filepath.Join("testdata", "shopify_orders_create.json"))
	if err != nil {
		b.Fatal(err)
	}
	db, err := Open(filepath.Join(b.TempDir(), FileName), Options{KeepRaw: keepRaw, NoSync: noSync})
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	ctx := context.Background()
	var seq atomic.Int64
	items := []behavior.Item{
		{ProductID: "632910392", VariantID: "808950810", Title: "IPod Nano - 8GB", Price: 19900, Quantity: 1},
		{ProductID: "632910393", VariantID: "808950811", Title: "IPod Nano - 8GB (pink)", Price: 19900, Quantity: 1},
	}
	b.SetParallelism((64 + runtime.GOMAXPROCS(0) - 1) / runtime.GOMAXPROCS(0))
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			n := seq.Add(1)
			r := behavior.Record{
				ID: fmt.Sprintf("order-%d", n), Kind: behavior.OrderPlaced, Source: "shopify", Store: "main",
				At: time.Now(), Email: fmt.Sprintf("c%d@example.com", n%1000), CustomerID: fmt.Sprint(n % 1000),
				Value: 39800, Currency: "USD", Items: items,
			}
			_, err := db.Append(ctx, Ingest{
				Delivery: &Delivery{ID: fmt.Sprintf("evt-%d", n), Source: "shopify", Store: "main", Topic: "orders/create", Body: body},
				Records:  []behavior.Record{r},
			})
			if err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "records/s")
}

func BenchmarkAppendParallel64(b *testing.B)       { benchAppendParallel(b, false, true) }
func BenchmarkAppendParallel64NoSync(b *testing.B) { benchAppendParallel(b, true, true) }

// BenchmarkAppendParallel64NoRaw shows what keeping the raw body costs.
func BenchmarkAppendParallel64NoRaw(b *testing.B) { benchAppendParallel(b, false, false) }
