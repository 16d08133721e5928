package importer

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/nudge-email/nudge/behavior"
	"github.com/nudge-email/nudge/connectors/shopify"
	"github.com/nudge-email/nudge/connectors/woocommerce"
	"github.com/nudge-email/nudge/storage"
)

// openStore opens a real bbolt store in a temp dir.
func openStore(t testing.TB) *storage.DB {
	t.Helper()
	db, err := storage.Open(filepath.Join(t.TempDir(), "nudge.db"), storage.Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func writeFile(t testing.TB, name, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// counts is the part of a Report the tests compare.
type counts struct {
	Files, Rows, Records, Imported, Duplicates, Rejected, Skipped int
}

func countsOf(r Report) counts {
	return counts{r.Files, r.Rows, r.Records, r.Imported, r.Duplicates, r.Rejected, r.Skipped}
}

func errorLines(r Report) []string {
	var out []string
	for _, e := range r.Errors {
		out = append(out, e.Error())
	}
	return out
}

const ndjsonSample = `{"id":"r1","kind":"order_placed","source":"shopify","store":"main","at":"2024-01-05T10:11:12-05:00","email":"Ann@Example.com","value":5400,"currency":"USD","items":[{"product_id":"p1","title":"Trail Runner","price":5400,"quantity":1}]}
{"kind":"product_viewed","at":"2024-01-04T09:00:00Z","anonymous_id":"anon-1","url":"https://example.com/p/1","items":[{"product_id":"p1"}]}

{"kind":"page_viewed","at":"2024-01-04T09:00:00Z","email":"ann@example.com"}
{"kind":"page_viewed","at":"2024-01-04T09:00:00Z","email":"ann@example.com"}
{"kind":"order_placed","at":"2024-01-05T10:11:12Z"}
{"kind":"teleported","at":"2024-01-05T10:11:12Z","email":"a@example.com"}
{"kind":"page_viewed","email":"a@example.com"}
{"kind":"page_viewed","at":"yesterday","email":"a@example.com"}
{"kind":"page_viewed","at":"2024-01-04T09:00:00Z","email":"a@example.com","colour":"red"}
{"kind":"order_placed","at":"2024-01-04T09:00:00Z","email":"a@example.com","value":12.5}
not json
{"kind":"page_viewed","at":"2024-01-04T09:00:00Z","email":"a@example.com"} {"kind":"page_viewed"}
{"kind":"page_viewed","at":"2024-01-04T09:00:00Z","email":"no-at-sign"}
{"kind":"page_viewed","at":"1900-01-01T00:00:00Z","email":"a@example.com"}
{"kind":"customer_updated","at":"2024-01-04T09:00:00Z","customer_id":"42","source":"woocommerce","store":"main","currency":"usd"}
`

func TestNDJSONImportTwice(t *testing.T) {
	t.Parallel()
	db := openStore(t)
	ctx := context.Background()
	path := writeFile(t, "history.ndjson", ndjsonSample)

	rep, err := Run(ctx, db, []string{path}, "", Options{BatchSize: 2})
	if err != nil {
		t.Fatal(err)
	}
	want := counts{Files: 1, Rows: 15, Records: 5, Imported: 4, Duplicates: 1, Rejected: 10}
	if got := countsOf(rep); got != want {
		t.Errorf("first import counts = %+v, want %+v", got, want)
	}
	wantErrs := []string{
		path + `:6: no identity (email, customer_id or anonymous_id)`,
		path + `:7: unknown kind "teleported"`,
		path + `:8: no time (at)`,
		path + `:9: time is not RFC 3339 (e.g. 2024-01-05T10:11:12Z): parsing time "yesterday" as "2006-01-02T15:04:05Z07:00": cannot parse "yesterday" as "2006"`,
		path + `:10: unknown field "colour" (records-ndjson fields: id, kind, source, store, at, email, customer_id, anonymous_id, value, currency, items, query, url, seconds, refs, attrs, consent, person, received_at)`,
		path + `:11: field "value": expected int64, got JSON number 12.5`,
		path + `:12: invalid JSON at byte 2: invalid character 'o' in literal null (expecting 'u')`,
		path + `:13: invalid JSON: more than one value on the line`,
		path + `:14: email "no-at-sign" is not an address`,
		path + `:15: time 1900-01-01T00:00:00Z out of range (1970 to 2199)`,
	}
	// Line 16 is valid; line 5 duplicates line 4 within the file.
	if got := errorLines(rep); !reflect.DeepEqual(got, wantErrs) {
		t.Errorf("errors:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(wantErrs, "\n"))
	}

	r1, err := db.Record(ctx, "r1")
	if err != nil {
		t.Fatalf("record r1 not stored: %v", err)
	}
	if r1.Email != "ann@example.com" || r1.Value != 5400 || len(r1.Items) != 1 {
		t.Errorf("r1 = %+v", r1)
	}
	p, err := db.ProfileByEmail(ctx, "ann@example.com")
	if err != nil {
		t.Fatal(err)
	}
	if p.OrdersCount != 1 {
		t.Errorf("profile orders = %d, want 1", p.OrdersCount)
	}
	// A derived id is the content id of the normalized line.
	viewed := behavior.Record{Kind: behavior.ProductViewed, At: time.Date(2024, 1, 4, 9, 0, 0, 0, time.UTC), AnonymousID: "anon-1", URL: "https://example.com/p/1", Items: []behavior.Item{{ProductID: "p1"}}}
	if _, err := db.Record(ctx, behavior.ContentID(viewed)); err != nil {
		t.Errorf("line 2 not stored under its content id: %v", err)
	}
	// The customer_updated line's currency was upper-cased before its id was derived.
	if _, err := db.Record(ctx, behavior.ContentID(behavior.Record{Kind: behavior.CustomerUpdated, At: time.Date(2024, 1, 4, 9, 0, 0, 0, time.UTC), CustomerID: "42", Source: "woocommerce", Store: "main", Currency: "USD"})); err != nil {
		t.Errorf("line 16 not stored under its content id: %v", err)
	}

	again, err := Run(ctx, db, []string{path}, FormatNDJSON, Options{})
	if err != nil {
		t.Fatal(err)
	}
	want = counts{Files: 1, Rows: 15, Records: 5, Imported: 0, Duplicates: 5, Rejected: 10}
	if got := countsOf(again); got != want {
		t.Errorf("second import counts = %+v, want %+v", got, want)
	}
	st, err := db.Stats(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if st.Records != 4 {
		t.Errorf("store holds %d records after two imports, want 4", st.Records)
	}
}

func TestShopifyOrdersCSV(t *testing.T) {
	t.Parallel()
	db := openStore(t)
	ctx := context.Background()
	path := filepath.Join("testdata", "shopify_orders.csv")
	opts := Options{StoreID: "main"}

	rep, err := Run(ctx, db, []string{path}, "", opts)
	if err != nil {
		t.Fatal(err)
	}
	want := counts{Files: 1, Rows: 11, Records: 9, Imported: 9, Rejected: 4}
	if got := countsOf(rep); got != want {
		t.Errorf("counts = %+v, want %+v", got, want)
	}
	wantErrs := []string{
		path + `:11: order #1005: column Lineitem price: "five" is not an amount`,
		path + `:12: order #1006: email "not-an-email" is not an address`,
		path + `:13: order #1001 continues here after other orders; keep an order's rows together, as Shopify exports them`,
	}
	if got := errorLines(rep); !reflect.DeepEqual(got, wantErrs) {
		t.Errorf("errors:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(wantErrs, "\n"))
	}

	// #1001 spans two rows (the first with a quoted two-line note): one
	// order_placed with both items, under the id the live connector uses.
	placed, err := db.Record(ctx, shopify.OrderRecordID("main", behavior.OrderPlaced, "5001"))
	if err != nil {
		t.Fatalf("order_placed of #1001 not under the live connector's id: %v", err)
	}
	wantItems := []behavior.Item{
		{Title: "Trail Runner - 42", SKU: "TR-42", Price: 5400, Quantity: 1},
		{Title: `Socks, "wool"`, SKU: "SK-2", Price: 500, Quantity: 2},
	}
	if !reflect.DeepEqual(placed.Items, wantItems) {
		t.Errorf("items = %+v, want %+v", placed.Items, wantItems)
	}
	if placed.Value != 6400 || placed.Currency != "USD" || placed.Email != "ann@example.com" || placed.Source != "shopify" || placed.Store != "main" {
		t.Errorf("order_placed = %+v", placed)
	}
	if !placed.At.Equal(time.Date(2024, 1, 5, 15, 11, 12, 0, time.UTC)) {
		t.Errorf("at = %v, want 2024-01-05 10:11:12 -0500", placed.At)
	}
	if placed.Consent == nil || placed.Consent.State != behavior.ConsentGranted {
		t.Errorf("consent = %+v, want granted (Accepts Marketing yes)", placed.Consent)
	}
	if placed.Person == nil || placed.Person.FirstName != "Ann" || placed.Person.LastName != "Example" || placed.Person.Country != "US" {
		t.Errorf("person = %+v", placed.Person)
	}
	if placed.Ref(behavior.RefOrderID) != "5001" || placed.Attrs[behavior.AttrTopic] != Topic || placed.Attrs[shopify.AttrOrderName] != "#1001" {
		t.Errorf("refs %v attrs %v", placed.Refs, placed.Attrs)
	}
	for _, tt := range []struct {
		kind  behavior.Kind
		id    string
		at    time.Time
		value int64
	}{
		{behavior.OrderPaid, "5001", time.Date(2024, 1, 5, 15, 12, 0, 0, time.UTC), 6400},
		{behavior.OrderFulfilled, "5001", time.Date(2024, 1, 6, 14, 0, 0, 0, time.UTC), 6400},
		{behavior.OrderPaid, "5002", time.Date(2024, 2, 1, 7, 0, 0, 0, time.UTC), 2000},
		{behavior.OrderRefunded, "5002", time.Date(2024, 2, 1, 7, 0, 0, 0, time.UTC), 2000},
		{behavior.OrderCancelled, "5003", time.Date(2024, 3, 2, 12, 0, 0, 0, time.UTC), 3000},
	} {
		r, err := db.Record(ctx, shopify.OrderRecordID("main", tt.kind, tt.id))
		if err != nil {
			t.Errorf("%s of order %s: %v", tt.kind, tt.id, err)
			continue
		}
		if !r.At.Equal(tt.at) || r.Value != tt.value {
			t.Errorf("%s of order %s: at %v value %d, want %v %d", tt.kind, tt.id, r.At, r.Value, tt.at, tt.value)
		}
	}
	// The order without an Id is keyed by its name.
	mug, err := db.Record(ctx, behavior.DeriveID("shopify", "main", "order_placed", "order-name:#1004"))
	if err != nil || mug.Currency != "EUR" || mug.Value != 990 {
		t.Errorf("#1004 = %+v, %v", mug, err)
	}
	// Identity: Bo@Example.com is one profile, with a refunded order.
	bo, err := db.ProfileByEmail(ctx, "bo@example.com")
	if err != nil {
		t.Fatal(err)
	}
	if bo.Consent.State == behavior.ConsentGranted {
		t.Errorf("Accepts Marketing no granted consent: %+v", bo.Consent)
	}
	if _, err := db.ProfileByEmail(ctx, "dee@example.com"); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("rejected order #1005 left a profile: %v", err)
	}

	again, err := Run(ctx, db, []string{path}, FormatShopify, opts)
	if err != nil {
		t.Fatal(err)
	}
	want = counts{Files: 1, Rows: 11, Records: 9, Duplicates: 9, Rejected: 4}
	if got := countsOf(again); got != want {
		t.Errorf("re-import counts = %+v, want %+v", got, want)
	}
}

func TestWooCommerceOrdersCSV(t *testing.T) {
	t.Parallel()
	tests := []struct {
		file     string
		want     counts
		wantErrs []string
		check    func(t *testing.T, db *storage.DB)
	}{
		{
			file: "woocommerce_orders_per_item.csv",
			// 188 completed (2 rows): placed, paid, fulfilled; 189 failed:
			// skipped; 190 refunded: placed, paid, refunded; 191: bad total.
			want:     counts{Files: 1, Rows: 5, Records: 6, Imported: 6, Rejected: 1, Skipped: 1},
			wantErrs: []string{`:6: order 191: order_total "abc" is not an amount`},
			check: func(t *testing.T, db *storage.DB) {
				ctx := context.Background()
				r, err := db.Record(ctx, woocommerce.OrderRecordID("main", behavior.OrderPlaced, "188"))
				if err != nil {
					t.Fatal(err)
				}
				wantItems := []behavior.Item{{Title: "Ninja Silhouette", SKU: "WOO-NS", Price: 1500, Quantity: 2}, {Title: "Happy Ninja", SKU: "WOO-HN", Price: 600, Quantity: 1}}
				if !reflect.DeepEqual(r.Items, wantItems) || r.Value != 4100 || r.CustomerID != "7" || r.Email != "skyler@example.com" {
					t.Errorf("order 188 = %+v", r)
				}
				if !r.At.Equal(time.Date(2016, 9, 15, 3, 17, 47, 0, time.UTC)) {
					t.Errorf("at = %v", r.At)
				}
				if r.Person == nil || r.Person.Country != "US" || r.Person.FirstName != "Skyler" {
					t.Errorf("person = %+v", r.Person)
				}
				for _, k := range []behavior.Kind{behavior.OrderPaid, behavior.OrderFulfilled} {
					if _, err := db.Record(ctx, woocommerce.OrderRecordID("main", k, "188")); err != nil {
						t.Errorf("%s of 188: %v", k, err)
					}
				}
				ref, err := db.Record(ctx, woocommerce.OrderRecordID("main", behavior.OrderRefunded, "190"))
				if err != nil || ref.Value != 1800 {
					t.Errorf("refund of 190 = %+v, %v", ref, err)
				}
				if _, err := db.ProfileByEmail(ctx, "walt@example.com"); !errors.Is(err, storage.ErrNotFound) {
					t.Errorf("failed order 189 was imported: %v", err)
				}
			},
		},
		{
			file:     "woocommerce_orders_default.csv",
			want:     counts{Files: 1, Rows: 3, Records: 3, Imported: 3, Rejected: 1},
			wantErrs: []string{`:4: order 202: item quantity "x" is not a count`},
			check: func(t *testing.T, db *storage.DB) {
				ctx := context.Background()
				r, err := db.Record(ctx, woocommerce.OrderRecordID("main", behavior.OrderPlaced, "200"))
				if err != nil {
					t.Fatal(err)
				}
				wantItems := []behavior.Item{{Title: "Beaker", SKU: "B1", Price: 1000, Quantity: 1}, {Title: "Flask", SKU: "F1", Price: 500, Quantity: 3}}
				if !reflect.DeepEqual(r.Items, wantItems) || r.Currency != "EUR" || r.Attrs[woocommerce.AttrOrderNumber] != "W-200" {
					t.Errorf("order 200 = %+v", r)
				}
				if _, err := db.Record(ctx, woocommerce.OrderRecordID("main", behavior.OrderCancelled, "201")); err != nil {
					t.Errorf("cancelled 201: %v", err)
				}
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			t.Parallel()
			db := openStore(t)
			path := filepath.Join("testdata", tt.file)
			rep, err := Run(context.Background(), db, []string{path}, "", Options{StoreID: "main"})
			if err != nil {
				t.Fatal(err)
			}
			if got := countsOf(rep); got != tt.want {
				t.Errorf("counts = %+v, want %+v", got, tt.want)
			}
			var want []string
			for _, e := range tt.wantErrs {
				want = append(want, path+e)
			}
			if got := errorLines(rep); !reflect.DeepEqual(got, want) {
				t.Errorf("errors = %q, want %q", got, want)
			}
			tt.check(t, db)
			again, err := Run(context.Background(), db, []string{path}, FormatWooCommerce, Options{StoreID: "main"})
			if err != nil {
				t.Fatal(err)
			}
			if again.Imported != 0 || again.Duplicates != tt.want.Imported {
				t.Errorf("re-import: imported %d, duplicates %d; want 0, %d", again.Imported, again.Duplicates, tt.want.Imported)
			}
		})
	}
}

func TestDetect(t *testing.T) {
	t.Parallel()
	shopifyHead, err := os.ReadFile(filepath.Join("testdata", "shopify_orders.csv"))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, content, want, err string
	}{
		{name: "a.ndjson", content: "", want: FormatNDJSON},
		{name: "a.jsonl.gz", content: "", want: FormatNDJSON},
		{name: "export.txt", content: "\n  {\"kind\":\"x\"}", want: FormatNDJSON},
		{name: "orders_export.csv", content: string(shopifyHead), want: FormatShopify},
		{name: "orders.csv", content: "\ufefforder_id,order_number,date,status,order_total,billing_email\n", want: FormatWooCommerce},
		{name: "orders.csv", content: "Order ID,Order Date,Order Status,Billing Email,Order Total\n", want: FormatWooCommerce},
		{name: "mystery.csv", content: "a,b,c\n", err: "import: mystery.csv: cannot tell the format from its name or first line; pass one of records-ndjson, shopify-orders-csv, woocommerce-orders-csv"},
	}
	for _, tt := range tests {
		got, err := detect(tt.name, bufioReader(tt.content))
		if tt.err != "" {
			if err == nil || err.Error() != tt.err {
				t.Errorf("detect(%s) error = %v, want %q", tt.name, err, tt.err)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("detect(%s) = %q, %v; want %q", tt.name, got, err, tt.want)
		}
	}
}

func TestRunErrors(t *testing.T) {
	t.Parallel()
	db := openStore(t)
	ctx := context.Background()
	noCols := writeFile(t, "orders.csv", "Name,Email\n#1,a@example.com\n")
	tests := []struct {
		name   string
		files  []string
		format string
		opts   Options
		err    string
	}{
		{"missing file", []string{"/nonexistent/x.ndjson"}, "", Options{}, "import: open /nonexistent/x.ndjson: no such file or directory"},
		{"unknown format", []string{noCols}, "xml", Options{}, `import: unknown format "xml" (known: records-ndjson, shopify-orders-csv, woocommerce-orders-csv)`},
		{"missing columns", []string{noCols}, FormatShopify, Options{StoreID: "main"}, "import: " + noCols + ": not a shopify-orders-csv file: missing column(s) created_at, total, lineitem_quantity, lineitem_name, lineitem_price"},
		{"woo missing columns", []string{noCols}, FormatWooCommerce, Options{StoreID: "main"}, "import: " + noCols + ": not a woocommerce-orders-csv file: missing column order_id or order_number"},
		{"no store id", []string{noCols}, FormatShopify, Options{}, "import: " + noCols + ": shopify-orders-csv needs the store id (--store) to give orders the ids live webhooks use"},
	}
	for _, tt := range tests {
		_, err := Run(ctx, db, tt.files, tt.format, tt.opts)
		if err == nil || err.Error() != tt.err {
			t.Errorf("%s: error = %v, want %q", tt.name, err, tt.err)
		}
	}
	empty := writeFile(t, "e.csv", "")
	if _, err := Run(ctx, db, []string{empty}, FormatWooCommerce, Options{StoreID: "main"}); err == nil || err.Error() != "import: "+empty+": empty file (no header row)" {
		t.Errorf("empty csv: %v", err)
	}
	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := ImportReader(cancelled, db, "body", strings.NewReader(ndjsonSample), FormatNDJSON, Options{}); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled import: %v", err)
	}
}

func TestGzipAndReader(t *testing.T) {
	t.Parallel()
	db := openStore(t)
	var buf bytes.Buffer
	zw := gzipWriter(&buf)
	zw.Write([]byte(`{"kind":"page_viewed","at":"2024-01-04T09:00:00Z","email":"z@example.com"}` + "\n"))
	zw.Close()
	rep, err := ImportReader(context.Background(), db, "upload", &buf, "", Options{})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Imported != 1 || rep.Rows != 1 {
		t.Errorf("gzip import = %+v", countsOf(rep))
	}
}

func TestReportWriteText(t *testing.T) {
	t.Parallel()
	rep := Report{Files: 1, Rows: 5, Records: 4, Imported: 3, Duplicates: 1, Rejected: 3, Skipped: 1,
		Errors:        []LineError{{File: "a.csv", Line: 4, Msg: "bad"}, {File: "a.csv", Line: 9, Msg: "worse"}},
		ErrorsOmitted: 1, Elapsed: 1234567 * time.Microsecond}
	var b strings.Builder
	if err := rep.WriteText(&b); err != nil {
		t.Fatal(err)
	}
	want := "imported 3 records, 1 duplicates, from 5 rows in 1 file(s); rejected 3 rows, skipped 1 (1.235s)\n" +
		"a.csv:4: bad\na.csv:9: worse\n… and 1 more rejected rows\n"
	if b.String() != want {
		t.Errorf("WriteText =\n%s\nwant\n%s", b.String(), want)
	}
}

func TestMaxErrors(t *testing.T) {
	t.Parallel()
	db := openStore(t)
	rep, err := ImportReader(context.Background(), db, "bad", strings.NewReader(strings.Repeat("nope\n", 10)), FormatNDJSON, Options{MaxErrors: 3})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Rejected != 10 || len(rep.Errors) != 3 || rep.ErrorsOmitted != 7 {
		t.Errorf("rejected %d, kept %d, omitted %d", rep.Rejected, len(rep.Errors), rep.ErrorsOmitted)
	}
}

func TestProgressLines(t *testing.T) {
	t.Parallel()
	db := openStore(t)
	var lines []string
	for i := 0; i < 6; i++ {
		lines = append(lines, `{"kind":"page_viewed","at":"2024-01-04T09:00:0`+string(rune('0'+i))+`Z","email":"p@example.com"}`)
	}
	path := writeFile(t, "p.ndjson", strings.Join(lines, "\n")+"\n")
	// A fake clock that advances 3 s per reading: a progress line every
	// other row.
	now := time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)
	clock := func() time.Time { now = now.Add(3 * time.Second); return now }
	var out bytes.Buffer
	rep, err := Run(context.Background(), db, []string{path}, "", Options{Progress: &out, NowFunc: clock, BatchSize: 100})
	if err != nil {
		t.Fatal(err)
	}
	got := out.String()
	if rep.Elapsed <= 0 {
		t.Errorf("Elapsed = %v", rep.Elapsed)
	}
	if !strings.Contains(got, "import: "+path+": done: 6 rows, 6 new, 0 duplicates, 0 rejected in ") {
		t.Errorf("no final line in:\n%s", got)
	}
	if n := strings.Count(got, "rows/s\n"); n < 2 {
		t.Errorf("%d periodic lines, want at least 2:\n%s", n, got)
	}
	if strings.Contains(got, "\r") {
		t.Errorf("carriage returns in non-terminal output:\n%q", got)
	}
}

func TestProgressBar(t *testing.T) {
	t.Parallel()
	var out bytes.Buffer
	now := time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)
	p := newProgress(&out, "orders.csv", 1000, func() time.Time { return now })
	p.tty, p.interval = true, barEvery // a bytes.Buffer is no terminal; draw as if it were
	now = now.Add(2 * time.Second)
	p.update(500, &Report{Rows: 40, Imported: 30, Duplicates: 5, Rejected: 1})
	want := "\r\033[Korders.csv [===============               ]  50% 40 rows, 30 new, 5 dup, 1 rejected, 20 rows/s"
	if out.String() != want {
		t.Errorf("bar = %q, want %q", out.String(), want)
	}
	out.Reset()
	now = now.Add(100 * time.Millisecond)
	p.update(600, &Report{Rows: 41})
	if out.Len() != 0 {
		t.Errorf("redrawn within %v: %q", barEvery, out.String())
	}
	p.done(&Report{Rows: 80})
	if got := out.String(); !strings.HasPrefix(got, "\r\033[Korders.csv [==============================] 100% 80 rows") || !strings.HasSuffix(got, "\n") {
		t.Errorf("final bar = %q", got)
	}
}

func TestDetectFile(t *testing.T) {
	t.Parallel()
	var buf bytes.Buffer
	zw := gzipWriter(&buf)
	zw.Write([]byte("order_id,date,status,order_total,billing_email\n"))
	zw.Close()
	gz := writeFile(t, "export.csv.gz", buf.String())
	if got, err := DetectFile(gz); err != nil || got != FormatWooCommerce {
		t.Errorf("DetectFile(gzip woo) = %q, %v", got, err)
	}
	if got, err := DetectFile(filepath.Join("testdata", "shopify_orders.csv")); err != nil || got != FormatShopify {
		t.Errorf("DetectFile(shopify) = %q, %v", got, err)
	}
	if _, err := DetectFile("/nonexistent.csv"); err == nil {
		t.Error("DetectFile of a missing file succeeded")
	}
}

// A line naming a configured store but no source takes the store's
// platform as its source, so its customer id joins the customer that
// store's webhooks created (the audit's order_fulfilled with only
// customer_id 6006 stayed apart from gus@example.com). Its id is the one
// derived before, so files imported earlier stay duplicates.
func TestNDJSONStoreWithoutSource(t *testing.T) {
	t.Parallel()
	db := openStore(t)
	ctx := context.Background()
	webhook := behavior.Record{ID: "shopify-customer-6006", Kind: behavior.CustomerUpdated, Source: "shopify", Store: "main",
		At: time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC), Email: "gus@example.com", CustomerID: "6006"}
	if _, err := db.Append(ctx, storage.Ingest{Records: []behavior.Record{webhook}}); err != nil {
		t.Fatal(err)
	}
	line := `{"kind":"order_fulfilled","at":"2024-01-05T10:00:00Z","store":"main","customer_id":"6006"}` + "\n"
	var wantID string
	{
		r, err := decodeRecord([]byte(line))
		if err != nil {
			t.Fatal(err)
		}
		wantID = behavior.ContentID(r)
	}
	rep, err := ImportReader(ctx, db, "f.ndjson", strings.NewReader(line), FormatNDJSON, Options{StoreSources: map[string]string{"main": "shopify"}})
	if err != nil || rep.Imported != 1 {
		t.Fatalf("%+v %v", countsOf(rep), err)
	}
	p, err := db.ProfileByEmail(ctx, "gus@example.com")
	if err != nil {
		t.Fatal(err)
	}
	recs, err := db.RecordsByProfile(ctx, p.ID, storage.RecordQuery{})
	if err != nil {
		t.Fatal(err)
	}
	var got *behavior.Record
	for i := range recs {
		if recs[i].Kind == behavior.OrderFulfilled {
			got = &recs[i]
		}
	}
	if got == nil || got.Source != "shopify" || got.ID != wantID {
		t.Fatalf("the imported record is not on gus's profile with source shopify and id %s: %+v", wantID, recs)
	}
}
