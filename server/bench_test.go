package server_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nudge-email/nudge/behavior"
	"github.com/nudge-email/nudge/connectors/shopify"
	"github.com/nudge-email/nudge/server"
	"github.com/nudge-email/nudge/storage"
)

// Webhook path benchmarks: 64 concurrent clients post the ~27 KB Shopify
// sample order (fixture shopify_orders_create.json) over real HTTP, each
// request a new order (unique X-Shopify-Event-Id and order id) of one of
// 1,000 customers, signed with the real HMAC.
//
//	go test -run '^$' -bench Webhook -benchtime 3s ./server/
//
// BenchmarkWebhookShopifyOrder64 stores every delivery (real bbolt file,
// fsync on, raw bodies kept, as `nudge serve` runs); the Baseline variant
// runs the same server with a store whose Append does nothing, so its
// requests only read, verify, normalize and answer 200. The ratio of the
// two is what durable storage costs the webhook path. cpu-µs/op is the
// user+sys CPU time of the test process (client and server) per request.

func BenchmarkWebhookShopifyOrder64(b *testing.B)         { benchWebhookShopifyOrder(b, true) }
func BenchmarkWebhookShopifyOrder64Baseline(b *testing.B) { benchWebhookShopifyOrder(b, false) }

// nopAppendStore is a real store whose Append stores nothing and reports
// every record as new.
type nopAppendStore struct{ storage.Store }

func (nopAppendStore) Append(_ context.Context, in storage.Ingest) (storage.AppendResult, error) {
	return storage.AppendResult{New: in.Records, Profiles: map[string]string{}}, nil
}

// orderTemplate splits the fixture around the values made unique per
// request: the order id, the customer's id and the customer's email.
type orderTemplate struct{ parts [][]byte }

const (
	fixtureOrderID    = "450789469"
	fixtureCustomerID = "207119551"
	fixtureEmail      = "bob.norman@mail.example.com"
)

func newOrderTemplate(b *testing.B) orderTemplate {
	raw, err := os.ReadFile(filepath.Join("testdata", "fixtures", "shopify_orders_create.json"))
	if err != nil {
		b.Fatal(err)
	}
	// Mark each value with a placeholder byte, then split on them.
	s := bytes.ReplaceAll(raw, []byte(fixtureOrderID), []byte("\x00O"))
	s = bytes.ReplaceAll(s, []byte(fixtureCustomerID), []byte("\x00C"))
	s = bytes.ReplaceAll(s, []byte(fixtureEmail), []byte("\x00E"))
	return orderTemplate{parts: bytes.Split(s, []byte{0})}
}

// body returns order n of customer n%1000.
func (o orderTemplate) body(n int64) []byte {
	order := strconv.FormatInt(5_000_000_000+n, 10)
	cust := strconv.FormatInt(7_000_000_000+n%1000, 10)
	email := "customer-" + strconv.FormatInt(n%1000, 10) + "@example.com"
	out := make([]byte, 0, 28<<10)
	out = append(out, o.parts[0]...)
	for _, p := range o.parts[1:] {
		switch p[0] {
		case 'O':
			out = append(out, order...)
		case 'C':
			out = append(out, cust...)
		case 'E':
			out = append(out, email...)
		}
		out = append(out, p[1:]...)
	}
	return out
}

func benchWebhookShopifyOrder(b *testing.B, durable bool) {
	tmpl := newOrderTemplate(b)
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	db, err := storage.Open(filepath.Join(b.TempDir(), "nudge.db"), storage.Options{KeepRaw: true, Logger: logger})
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	var st storage.Store = db
	if !durable {
		st = nopAppendStore{db}
	}
	srv, err := server.New(server.Options{
		Store:      st,
		Webhooks:   []server.Webhook{{Source: "shopify", Store: "main", Receiver: shopify.New(shopify.Config{StoreID: "main", Secret: ingShopSecret, Currency: "USD"})}},
		AdminToken: adminToken,
		Logger:     logger,
	})
	if err != nil {
		b.Fatal(err)
	}
	ts := httptest.NewServer(srv.Handler())
	defer ts.Close()
	client := &http.Client{Transport: &http.Transport{MaxIdleConns: 256, MaxIdleConnsPerHost: 256}}
	defer client.CloseIdleConnections()
	url := ts.URL + "/webhooks/shopify/main"

	var seq, failures atomic.Int64
	first := atomic.Pointer[string]{}
	b.SetParallelism((64 + runtime.GOMAXPROCS(0) - 1) / runtime.GOMAXPROCS(0))
	b.SetBytes(int64(len(tmpl.body(0))))
	b.ReportAllocs()
	cpu0 := processCPU()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			n := seq.Add(1)
			body := tmpl.body(n)
			req, err := http.NewRequest(http.MethodPost, url, bytes.NewReader(body))
			if err != nil {
				b.Error(err)
				return
			}
			req.Header.Set("Content-Type", "application/json")
			req.Header.Set(shopify.HeaderTopic, "orders/create")
			req.Header.Set(shopify.HeaderShopDomain, "example.myshopify.com")
			req.Header.Set(shopify.HeaderAPIVersion, "2024-04")
			req.Header.Set(shopify.HeaderWebhookID, fmt.Sprintf("webhook-%d", n))
			req.Header.Set(shopify.HeaderEventID, fmt.Sprintf("event-%d", n))
			req.Header.Set(shopify.HeaderTriggeredAt, "2024-04-02T14:00:00Z")
			req.Header.Set(shopify.HeaderHmac, shopify.Sign(ingShopSecret, body))
			resp, err := client.Do(req)
			if err != nil {
				b.Error(err)
				return
			}
			raw, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK || !bytes.Contains(raw, []byte(`"records":1`)) {
				failures.Add(1)
				msg := fmt.Sprintf("%d %s", resp.StatusCode, raw)
				first.CompareAndSwap(nil, &msg)
			}
		}
	})
	b.StopTimer()
	if cpu := processCPU(); cpu > 0 {
		// User+sys CPU of the whole process (client included) per
		// request: other load on the machine moves it less than wall
		// time. It includes the garbage collector's idle-time marking,
		// which uses CPUs only while they would idle (more so on the
		// stored path, whose requests wait for fsync).
		b.ReportMetric(float64(cpu-cpu0)/float64(time.Microsecond)/float64(b.N), "cpu-µs/op")
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "req/s")
	if f := failures.Load(); f > 0 {
		b.Fatalf("%d of %d deliveries failed; first: %s", f, b.N, *first.Load())
	}
	if durable {
		// Every acknowledged delivery is one stored order.
		n := 0
		err := db.ScanRecords(context.Background(), time.Time{}, time.Time{}, func(r behavior.Record) error {
			n++
			return nil
		})
		if err != nil {
			b.Fatal(err)
		}
		if n != b.N {
			b.Fatalf("%d deliveries acknowledged, %d records stored", b.N, n)
		}
	}
}
