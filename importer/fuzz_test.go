package importer

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/nudge-email/nudge/storage"
)

// checkingStore stands in for the store in fuzz tests (a real bbolt file
// per input would be far too slow): it fails the test if Append ever sees
// a record the store would refuse, and stores nothing.
type checkingStore struct {
	storage.Store // nil: any other method panics, which would be a bug
	t             *testing.T
	seen          map[string]bool
	appended      int
}

func (s *checkingStore) Append(_ context.Context, in storage.Ingest) (storage.AppendResult, error) {
	var res storage.AppendResult
	for _, r := range in.Records {
		again := r
		if err := prepare(&again); err != nil {
			s.t.Fatalf("Append got an invalid record %+v: %v", r, err)
		}
		if r.ID == "" || again.ID != r.ID {
			s.t.Fatalf("record id %q is not stable (%q after a second prepare)", r.ID, again.ID)
		}
		if s.seen[r.ID] {
			res.Duplicates++
			continue
		}
		s.seen[r.ID] = true
		res.New = append(res.New, r)
	}
	s.appended += len(in.Records)
	return res, nil
}

// fuzzImport runs one import against a checking store and checks that the
// report adds up.
func fuzzImport(t *testing.T, data []byte, format string) {
	st := &checkingStore{t: t, seen: map[string]bool{}}
	rep, err := ImportReader(context.Background(), st, "fuzz", strings.NewReader(string(data)), format, Options{StoreID: "main", Currency: "USD", BatchSize: 7})
	if err != nil {
		// Only whole-file problems may stop an import.
		if !strings.HasPrefix(err.Error(), "import: fuzz: ") {
			t.Fatalf("unexpected error: %v", err)
		}
		return
	}
	if rep.Records != st.appended || rep.Imported+rep.Duplicates != rep.Records {
		t.Fatalf("report does not add up: %+v, appended %d", countsOf(rep), st.appended)
	}
	if rep.Rejected+rep.Skipped > rep.Rows {
		t.Fatalf("more rows rejected or skipped than read: %+v", countsOf(rep))
	}
	for _, e := range rep.Errors {
		if e.Line < 1 || e.Msg == "" {
			t.Fatalf("bad line error %+v", e)
		}
	}
}

func addSeeds(f *testing.F, pattern string, extra ...string) {
	files, _ := filepath.Glob(filepath.Join("testdata", pattern))
	for _, p := range files {
		b, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	for _, e := range extra {
		f.Add([]byte(e))
	}
}

func FuzzNDJSON(f *testing.F) {
	addSeeds(f, "*.ndjson", ndjsonSample,
		`{"kind":"order_placed","at":"2024-01-05T10:11:12Z","email":"a@b.c","items":[{"quantity":-1}]}`,
		`{"kind":"custom:x","at":"2024-01-05T10:11:12+14:00","anonymous_id":"`+strings.Repeat("a", 600)+`"}`,
		"\ufeff{\"kind\":\"page_viewed\",\"at\":\"2024-01-05T10:11:12Z\",\"email\":\"A@B.C\"}\r\n")
	f.Fuzz(func(t *testing.T, data []byte) { fuzzImport(t, data, FormatNDJSON) })
}

func FuzzShopifyCSV(f *testing.F) {
	addSeeds(f, "shopify_*.csv",
		"Name,Email,Created at,Total,Lineitem quantity,Lineitem name,Lineitem price,Financial Status,Id\n#1,a@b.c,2024-01-01,1,1,x,1,refunded,9\n#1,,,,2,y,2,,\n",
		"Name,Email,Created at,Total,Lineitem quantity,Lineitem name,Lineitem price\n\"#1,\"x\n")
	f.Fuzz(func(t *testing.T, data []byte) { fuzzImport(t, data, FormatShopify) })
}

func FuzzWooCommerceCSV(f *testing.F) {
	addSeeds(f, "woocommerce_*.csv",
		"order_id,date,status,order_total,billing_email,line_items\n1,2024-01-01 00:00:00,completed,1,a@b.c,name:x|quantity:2|total:3;name:y\n")
	f.Fuzz(func(t *testing.T, data []byte) { fuzzImport(t, data, FormatWooCommerce) })
}
