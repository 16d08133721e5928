package storage

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"maps"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/nudge-email/nudge/behavior"
	"github.com/nudge-email/nudge/connectors/shopify"
)

// BenchmarkAppendShopifyOrder64 is the storage half of the webhook
// benchmark in server/bench_test.go: 64 concurrent Appends, each a new
// order of one of 1,000 customers as the Shopify connector normalizes the
// 27 KB sample order, with that body as the raw delivery; real file,
// fsync on. Normalizing is done once, outside the loop, so the figures are
// the store's alone. cpu-µs/op is the process's user+sys CPU time per
// append: other load on the machine disturbs it less than wall time, but
// it counts the garbage collector's idle-time marking, which grows when
// CPUs are idle.
func BenchmarkAppendShopifyOrder64(b *testing.B) {
	raw, err := os.ReadFile(filepath.Join("testdata", "shopify_orders_create.json"))
	if err != nil {
		b.Fatal(err)
	}
	const orderID, customerID, email = "450789469", "207119551", "bob.norman@mail.example.com"
	h := http.Header{}
	h.Set(shopify.HeaderTopic, "orders/create")
	recs, err := shopify.New(shopify.Config{StoreID: "main", Secret: "x", Currency: "USD"}).Normalize(h, raw)
	if err != nil || len(recs) != 1 {
		b.Fatalf("normalize: %v, %d records", err, len(recs))
	}
	tmpl := recs[0]
	s := bytes.ReplaceAll(raw, []byte(orderID), []byte("\x00O"))
	s = bytes.ReplaceAll(s, []byte(customerID), []byte("\x00C"))
	s = bytes.ReplaceAll(s, []byte(email), []byte("\x00E"))
	parts := bytes.Split(s, []byte{0})

	db, err := Open(filepath.Join(b.TempDir(), FileName), Options{KeepRaw: true})
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	ctx := context.Background()
	var seq atomic.Int64
	b.SetParallelism((64 + runtime.GOMAXPROCS(0) - 1) / runtime.GOMAXPROCS(0))
	b.SetBytes(int64(len(raw)))
	b.ReportAllocs()
	cpu0 := cpuTime()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			n := seq.Add(1)
			order := strconv.FormatInt(5_000_000_000+n, 10)
			cust := strconv.FormatInt(7_000_000_000+n%1000, 10)
			mail := "customer-" + strconv.FormatInt(n%1000, 10) + "@example.com"
			body := make([]byte, 0, len(raw)+64)
			body = append(body, parts[0]...)
			for _, p := range parts[1:] {
				switch p[0] {
				case 'O':
					body = append(body, order...)
				case 'C':
					body = append(body, cust...)
				case 'E':
					body = append(body, mail...)
				}
				body = append(body, p[1:]...)
			}
			r := tmpl
			r.ID = shopify.OrderRecordID("main", behavior.OrderPlaced, order)
			r.Email, r.CustomerID, r.AnonymousID = mail, cust, shopify.OrderAnonymousID(order)
			r.Refs = maps.Clone(tmpl.Refs)
			r.Refs["order_id"] = order
			r.ReceivedAt = time.Now()
			_, err := db.Append(ctx, Ingest{
				Delivery: &Delivery{ID: TimeOrderedDeliveryID(r.ReceivedAt, benchDeliveryID(body)), Source: "shopify", Store: "main", Topic: "orders/create", ReceivedAt: r.ReceivedAt, Body: body},
				Records:  []behavior.Record{r},
			})
			if err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.StopTimer()
	if cpu := cpuTime(); cpu > 0 {
		b.ReportMetric(float64(cpu-cpu0)/float64(time.Microsecond)/float64(b.N), "cpu-µs/op")
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "records/s")
	if n := countBenchRecords(b, db); n != b.N {
		b.Fatalf("%d appends, %d records", b.N, n)
	}
}

func countBenchRecords(b *testing.B, db *DB) int {
	n := 0
	err := db.view(context.Background(), func(tx *bolt.Tx) error {
		n = tx.Bucket(bucketRecords).Stats().KeyN
		return nil
	})
	if err != nil {
		b.Fatal(err)
	}
	return n
}

// benchDeliveryID is the id server.deliveryID gives the delivery.
func benchDeliveryID(body []byte) string {
	h := sha256.New()
	h.Write([]byte("delivery\x00shopify/main\x00"))
	h.Write(body)
	h.Write([]byte{0})
	return hex.EncodeToString(h.Sum(nil)[:16])
}
