package web

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/stretchr/testify/require"

	"github.com/nudge-email/nudge/behavior"
	"github.com/nudge-email/nudge/clock"
	"github.com/nudge-email/nudge/storage"
)

const testKey = "test-write-key"

var testSecret = []byte("test-token-secret")

// fixture is one handler over a real bbolt store in a temp dir.
type fixture struct {
	h     *Handler
	r     *gin.Engine
	store *storage.DB
	clock *clock.Fake
}

func testConfig() Config {
	return Config{
		WriteKey:       testKey,
		AllowedOrigins: []string{"https://shop.example"},
		RatePerIP:      -1,
		RatePerKey:     -1,
		TokenSecret:    testSecret,
		StoreID:        "main",
		Currency:       "USD",
	}
}

func newFixture(t testing.TB, cfg Config) *fixture {
	t.Helper()
	gin.SetMode(gin.TestMode)
	clk := clock.NewFake(time.Date(2026, 11, 28, 12, 0, 0, 0, time.UTC))
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	st, err := storage.Open(filepath.Join(t.TempDir(), "nudge.db"), storage.Options{Clock: clk, Logger: logger})
	require.NoError(t, err)
	t.Cleanup(func() { _ = st.Close() })
	h, err := New(cfg, st, Options{Clock: clk, Logger: logger})
	require.NoError(t, err)
	r := gin.New()
	h.Register(r)
	return &fixture{h: h, r: r, store: st, clock: clk}
}

type call struct {
	path    string
	body    []byte
	key     string // basic-auth user; "" sends none
	headers map[string]string
}

func (f *fixture) do(c call) *httptest.ResponseRecorder {
	req := httptest.NewRequest(http.MethodPost, c.path, bytes.NewReader(c.body))
	req.Header.Set("Content-Type", "application/json")
	req.RemoteAddr = "203.0.113.7:5555"
	if c.key != "" {
		req.SetBasicAuth(c.key, "")
	}
	for k, v := range c.headers {
		req.Header.Set(k, v)
	}
	w := httptest.NewRecorder()
	f.r.ServeHTTP(w, req)
	return w
}

func (f *fixture) post(t testing.TB, path string, body []byte) *httptest.ResponseRecorder {
	t.Helper()
	return f.do(call{path: path, body: body, key: testKey})
}

// records returns every stored record, in time order.
func (f *fixture) records(t testing.TB) []behavior.Record {
	t.Helper()
	var out []behavior.Record
	err := f.store.ScanRecords(context.Background(), time.Time{}, time.Time{}, func(r behavior.Record) error {
		out = append(out, r)
		return nil
	})
	require.NoError(t, err)
	return out
}

func readFile(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	require.NoError(t, err)
	return b
}

func mustJSON(t testing.TB, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	require.NoError(t, err)
	return b
}

func decodeAnswer(t testing.TB, w *httptest.ResponseRecorder) answer {
	t.Helper()
	var a answer
	require.NoError(t, json.Unmarshal(w.Body.Bytes(), &a), "body %s", w.Body.String())
	return a
}

func TestSegmentSpecExamples(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		file  string
		route string
		check func(t *testing.T, r behavior.Record)
	}{
		{"http identify", "segment/http_identify.json", "/v1/identify", func(t *testing.T, r behavior.Record) {
			require.Equal(t, behavior.CustomerUpdated, r.Kind)
			require.Equal(t, "pgibbons@example.com", r.Email)
			require.Equal(t, "019mr8mf4r", r.CustomerID)
			require.Equal(t, "web/main", r.CustomerNamespace())
			require.Equal(t, "Peter", r.Person.FirstName)
			require.Equal(t, "Gibbons", r.Person.LastName)
			require.Equal(t, time.Date(2012, 12, 2, 0, 30, 8, 276e6, time.UTC), r.At)
		}},
		{"http track is custom", "segment/http_track.json", "/v1/track", func(t *testing.T, r behavior.Record) {
			require.Equal(t, behavior.Kind("custom:Item Purchased"), r.Kind)
			props := r.Attrs[AttrProperties].(map[string]any)
			require.Equal(t, "Leap to Conclusions Mat", props["name"])
		}},
		{"http page", "segment/http_page.json", "/v1/page", func(t *testing.T, r behavior.Record) {
			require.Equal(t, behavior.PageViewed, r.Kind)
			require.Equal(t, "Tracking HTTP API", r.Attrs[AttrPageName])
		}},
		{"http screen", "segment/http_screen.json", "/v1/screen", func(t *testing.T, r behavior.Record) {
			require.Equal(t, behavior.PageViewed, r.Kind)
			require.Equal(t, "Tracking HTTP API", r.Attrs[AttrScreen])
			require.Equal(t, TypeScreen, r.Attrs[AttrCallType])
		}},
		{"http alias", "segment/http_alias.json", "/v1/alias", func(t *testing.T, r behavior.Record) {
			require.Equal(t, behavior.CustomerUpdated, r.Kind)
			require.Equal(t, "39239-239239-239239-23923", r.AnonymousID)
			require.Equal(t, "019mr8mf4r", r.CustomerID)
		}},
		{"http group", "segment/http_group.json", "/v1/group", func(t *testing.T, r behavior.Record) {
			require.Equal(t, behavior.CustomerUpdated, r.Kind)
			require.Equal(t, "8e9df332ac", r.Attrs[AttrGroupID])
		}},
		{"spec track with skew correction", "segment/spec_track.json", "/v1/track", func(t *testing.T, r behavior.Record) {
			require.Equal(t, behavior.Kind("custom:Course Clicked"), r.Kind)
			require.Equal(t, "23adfd82-aa0f-45a7-a756-24f2a7a4c895", r.AnonymousID)
			require.Equal(t, "https://segment.com/academy/", r.URL)
			require.Equal(t, behavior.DeriveID("web", "main", "ajs-f8ca1e4de5024d9430b3928bd8ac6b96"), r.ID)
			// sentAt − timestamp = −80 ms: a timestamp after sentAt is a
			// client bug and cannot be later than our receipt.
			require.Equal(t, r.ReceivedAt, r.At)
			require.NotContains(t, string(mustJSON(t, r)), "108.0.78.21")
		}},
		{"spec page", "segment/spec_page.json", "/v1/page", func(t *testing.T, r behavior.Record) {
			require.Equal(t, behavior.PageViewed, r.Kind)
			require.Equal(t, "http://www.example.com", r.URL)
			require.Equal(t, "Welcome | Initech", r.Attrs[AttrTitle])
			require.Equal(t, "97980cfea0067", r.CustomerID)
			require.Equal(t, "507f191e810c19729de860ea", r.AnonymousID)
			require.NotContains(t, string(mustJSON(t, r)), "8.8.8.8")
		}},
		{"spec alias", "segment/spec_alias.json", "/v1/alias", func(t *testing.T, r behavior.Record) {
			require.Equal(t, "39239-239239-239239-23923", r.AnonymousID, "previousId wins over anonymousId")
			require.Equal(t, "507f191e81", r.CustomerID)
		}},
		{"products searched", "segment/ecommerce_products_searched.json", "/v1/track", func(t *testing.T, r behavior.Record) {
			require.Equal(t, behavior.Searched, r.Kind)
			require.Equal(t, "blue roses", r.Query)
		}},
		{"product list viewed", "segment/ecommerce_product_list_viewed.json", "/v1/track", func(t *testing.T, r behavior.Record) {
			require.Equal(t, behavior.CollectionViewed, r.Kind)
			require.Len(t, r.Items, 2)
			require.Equal(t, int64(1900), r.Items[0].Price)
			require.Equal(t, "hot_deals_1", r.Attrs[AttrListID])
		}},
		{"product viewed", "segment/ecommerce_product_viewed.json", "/v1/track", func(t *testing.T, r behavior.Record) {
			require.Equal(t, behavior.ProductViewed, r.Kind)
			require.Equal(t, []behavior.Item{{
				ProductID: "507f1f77bcf86cd799439011", SKU: "G-32", Title: "Monopoly: 3rd Edition",
				URL: "https://www.example.com/product/path", ImageURL: "https://www.example.com/product/path.jpg",
				Price: 1899, Quantity: 1, Category: "Games",
			}}, r.Items)
			require.Equal(t, "USD", r.Currency, "currency is upper-cased")
			// 2026-11-28T10:00:03 with sentAt equal: no skew.
			require.Equal(t, time.Date(2026, 11, 28, 12, 0, 0, 0, time.UTC), r.At)
		}},
		{"product added", "segment/ecommerce_product_added.json", "/v1/track", func(t *testing.T, r behavior.Record) {
			require.Equal(t, behavior.CartUpdated, r.Kind)
			require.Equal(t, "added", r.Attrs[AttrAction])
			require.Equal(t, "skdjsidjsdkdj29j", r.Ref(behavior.RefCartToken))
			require.Equal(t, int64(1899), r.Items[0].Price)
		}},
		{"cart viewed", "segment/ecommerce_cart_viewed.json", "/v1/track", func(t *testing.T, r behavior.Record) {
			require.Equal(t, behavior.CartUpdated, r.Kind)
			require.Equal(t, "viewed", r.Attrs[AttrAction])
			require.Equal(t, int64(1900+300), r.Value)
		}},
		{"checkout started", "segment/ecommerce_checkout_started.json", "/v1/track", func(t *testing.T, r behavior.Record) {
			require.Equal(t, behavior.CheckoutStarted, r.Kind)
			require.Equal(t, int64(3000), r.Value)
			require.Equal(t, "50314b8e9bcf000000000000", r.Ref(behavior.RefOrderID))
			require.Len(t, r.Items, 2)
			require.Equal(t, 2, r.Items[1].Quantity)
		}},
		{"order completed", "segment/ecommerce_order_completed.json", "/v1/track", func(t *testing.T, r behavior.Record) {
			require.Equal(t, behavior.OrderPlaced, r.Kind)
			require.Equal(t, int64(2500), r.Value, "revenue")
			require.Equal(t, "USD", r.Currency)
			require.Equal(t, "50314b8e9bcf000000000000", r.Ref(behavior.RefOrderID))
			require.Equal(t, "fksdjfsdjfisjf9sdfjsd9f", r.Ref(behavior.RefCheckoutToken))
			require.Equal(t, int64(300), r.Items[1].Price)
		}},
		{"order refunded", "segment/ecommerce_order_refunded.json", "/v1/track", func(t *testing.T, r behavior.Record) {
			require.Equal(t, behavior.OrderRefunded, r.Kind)
			require.Equal(t, int64(3000), r.Value)
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			f := newFixture(t, testConfig())
			w := f.post(t, tt.route, readFile(t, tt.file))
			require.Equal(t, http.StatusOK, w.Code, w.Body.String())
			require.JSONEq(t, `{"success":true,"stored":1}`, w.Body.String())
			recs := f.records(t)
			require.Len(t, recs, 1)
			r := recs[0]
			require.Equal(t, "web", r.Source)
			require.Equal(t, "main", r.Store)
			require.True(t, r.Kind.Valid())
			tt.check(t, r)
		})
	}
}

func TestKindFor(t *testing.T) {
	t.Parallel()
	for event, want := range map[string]behavior.Kind{
		"Product Viewed":        behavior.ProductViewed,
		"product viewed":        behavior.ProductViewed,
		"  PRODUCT   VIEWED ":   behavior.ProductViewed,
		"Viewed Product":        behavior.ProductViewed,
		"Product List Filtered": behavior.CollectionViewed,
		"Category Viewed":       behavior.CollectionViewed,
		"Products Searched":     behavior.Searched,
		"Product Removed":       behavior.CartUpdated,
		"Checkout Started":      behavior.CheckoutStarted,
		"Order Completed":       behavior.OrderPlaced,
		"Order Cancelled":       behavior.OrderCancelled,
		"Webinar Joined":        "custom:Webinar Joined",
		"Email Subscribed":      "custom:Email Subscribed",
		"Order Updated":         "custom:Order Updated",
	} {
		require.Equal(t, want, KindFor(event), event)
	}
}

func TestBatchSpecExample(t *testing.T) {
	t.Parallel()
	f := newFixture(t, testConfig())
	w := f.post(t, "/v1/batch", readFile(t, "segment/http_batch.json"))
	require.Equal(t, http.StatusOK, w.Code, w.Body.String())
	require.Equal(t, 4, decodeAnswer(t, w).Stored)
	recs := f.records(t)
	require.Len(t, recs, 4)
	byEmail := map[string]int{}
	for _, r := range recs {
		if r.Email != "" {
			byEmail[r.Email]++
		}
		if r.CustomerID == "971mj8mk7p" {
			// "2015-2-02T…" is not ISO 8601: received time, with a note.
			require.Equal(t, f.clock.Now(), r.At)
			require.Contains(t, r.Attrs[AttrNote], "unparseable timestamp")
		}
	}
	require.Equal(t, map[string]int{"jake@yahoo.com": 1, "cindy@example.com": 1}, byEmail)
	// Both of a user's calls land on one profile.
	p, err := f.store.ProfileByEmail(context.Background(), "cindy@example.com")
	require.NoError(t, err)
	got, err := f.store.RecordsByProfile(context.Background(), p.ID, storage.RecordQuery{})
	require.NoError(t, err)
	require.Len(t, got, 2)
}

func TestBatchPartialValidity(t *testing.T) {
	t.Parallel()
	good := map[string]any{"type": "track", "event": "Product Viewed", "anonymousId": "a1", "messageId": "m1", "properties": map[string]any{"product_id": "p1"}}
	tests := []struct {
		name         string
		body         []byte
		code         int
		stored       int
		rejected     []int
		errSubstring string
	}{
		{"malformed JSON rejects everything", []byte(`{"batch":[{"type":"track",`), 400, 0, nil, "invalid JSON"},
		{"missing batch array", []byte(`{"writeKey":"x"}`), 400, 0, nil, "missing \"batch\""},
		{"bad calls are reported, good ones stored", mustJSON(t, map[string]any{"batch": []any{
			map[string]any{"type": "track", "anonymousId": "a1"},
			good,
			map[string]any{"type": "bogus", "anonymousId": "a1"},
			map[string]any{"type": "page"},
			"not an object",
		}}), 200, 1, []int{0, 2, 3, 4}, ""},
		{"only bad calls is a 400", mustJSON(t, map[string]any{"batch": []any{
			map[string]any{"type": "track", "anonymousId": "a1"},
		}}), 400, 0, nil, "track call without \"event\""},
		{"an invalid nudge_id is rejected after parsing", mustJSON(t, map[string]any{"batch": []any{
			map[string]any{"type": "identify", "anonymousId": "a1", "traits": map[string]any{"nudge_id": "n1.forged"}},
			good,
		}}), 200, 1, []int{0}, ""},
		{"empty batch is fine", []byte(`{"batch":[]}`), 200, 0, nil, ""},
		{"rejections are in batch order", mustJSON(t, map[string]any{"batch": []any{
			good,
			map[string]any{"type": "identify", "anonymousId": "a1", "traits": map[string]any{"nudge_id": "n1.forged"}},
			map[string]any{"type": "page"},
		}}), 200, 1, []int{1, 2}, ""},
		{"a dropped call is not a failed batch", mustJSON(t, map[string]any{"batch": []any{
			map[string]any{"type": "page", "anonymousId": "bot", "context": map[string]any{"userAgent": "Googlebot/2.1"}},
			map[string]any{"type": "page"},
		}}), 200, 0, []int{1}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			f := newFixture(t, testConfig())
			w := f.post(t, "/v1/batch", tt.body)
			require.Equal(t, tt.code, w.Code, w.Body.String())
			a := decodeAnswer(t, w)
			if tt.code != 200 {
				require.Contains(t, a.Error, tt.errSubstring)
				require.Empty(t, f.records(t))
				return
			}
			require.Equal(t, tt.stored, a.Stored)
			var idx []int
			for _, r := range a.Rejected {
				idx = append(idx, r.Index)
				require.NotEmpty(t, r.Error)
			}
			require.Equal(t, tt.rejected, idx)
			require.Len(t, f.records(t), tt.stored)
		})
	}
}

func TestDedupeOnMessageID(t *testing.T) {
	t.Parallel()
	f := newFixture(t, testConfig())
	body := readFile(t, "segment/ecommerce_product_viewed.json")
	for i, want := range []int{1, 0} {
		w := f.post(t, "/v1/track", body)
		require.Equal(t, http.StatusOK, w.Code)
		require.Equal(t, want, decodeAnswer(t, w).Stored, "attempt %d", i)
	}
	// The same call inside a batch is the same record too.
	var m map[string]any
	require.NoError(t, json.Unmarshal(body, &m))
	w := f.post(t, "/v1/batch", mustJSON(t, map[string]any{"batch": []any{m}}))
	require.Equal(t, 0, decodeAnswer(t, w).Stored)
	// Without a messageId an identical resend dedupes on content.
	delete(m, "messageId")
	for i, want := range []int{1, 0} {
		w := f.post(t, "/v1/track", mustJSON(t, m))
		require.Equal(t, want, decodeAnswer(t, w).Stored, "content attempt %d", i)
	}
	require.Len(t, f.records(t), 2)
}

func TestIdentifyMergesAnonymousHistory(t *testing.T) {
	t.Parallel()
	f := newFixture(t, testConfig())
	ctx := context.Background()
	anon := "9c1f0e52-anon"
	browse := []map[string]any{
		{"type": "page", "anonymousId": anon, "messageId": "b1", "properties": map[string]any{"url": "https://shop.example/", "seconds": 12.5}},
		{"type": "track", "event": "Product Viewed", "anonymousId": anon, "messageId": "b2", "properties": map[string]any{"product_id": "p1", "name": "Trail Runner", "price": 54}},
		{"type": "track", "event": "Products Searched", "anonymousId": anon, "messageId": "b3", "properties": map[string]any{"query": "trail shoes"}},
	}
	for _, m := range browse {
		w := f.post(t, "/v1/"+m["type"].(string), mustJSON(t, m))
		require.Equal(t, http.StatusOK, w.Code, w.Body.String())
	}
	_, err := f.store.ProfileByEmail(ctx, "ann@example.com")
	require.ErrorIs(t, err, storage.ErrNotFound, "nobody knows ann yet")

	// A customer who already bought, under her email, before browsing.
	w := f.post(t, "/v1/track", mustJSON(t, map[string]any{"type": "track", "event": "Order Completed", "userId": "ann@example.com", "messageId": "o1",
		"timestamp": "2026-10-01T10:00:00Z", "properties": map[string]any{"order_id": "1001", "revenue": "54.00"}}))
	require.Equal(t, http.StatusOK, w.Code, w.Body.String())

	w = f.post(t, "/v1/identify", mustJSON(t, map[string]any{"type": "identify", "anonymousId": anon, "messageId": "i1", "traits": map[string]any{"email": "Ann@Example.com"}}))
	require.Equal(t, http.StatusOK, w.Code, w.Body.String())

	p, err := f.store.ProfileByEmail(ctx, "ann@example.com")
	require.NoError(t, err)
	recs, err := f.store.RecordsByProfile(ctx, p.ID, storage.RecordQuery{})
	require.NoError(t, err)
	var kinds []behavior.Kind
	for _, r := range recs {
		kinds = append(kinds, r.Kind)
	}
	require.ElementsMatch(t, []behavior.Kind{behavior.OrderPlaced, behavior.PageViewed, behavior.ProductViewed, behavior.Searched, behavior.CustomerUpdated}, kinds)
	byAnon, err := f.store.ProfileByIdentity(ctx, behavior.Identity{Type: behavior.IdentAnonymous, Value: anon})
	require.NoError(t, err)
	require.Equal(t, p.ID, byAnon.ID)
}

func TestAliasMergesIdentities(t *testing.T) {
	t.Parallel()
	f := newFixture(t, testConfig())
	ctx := context.Background()
	w := f.post(t, "/v1/page", mustJSON(t, map[string]any{"anonymousId": "anon-7", "messageId": "p1"}))
	require.Equal(t, http.StatusOK, w.Code, w.Body.String())
	w = f.post(t, "/v1/track", mustJSON(t, map[string]any{"userId": "cust-7", "event": "Product Viewed", "messageId": "p2", "properties": map[string]any{"product_id": "x"}}))
	require.Equal(t, http.StatusOK, w.Code, w.Body.String())
	w = f.post(t, "/v1/alias", mustJSON(t, map[string]any{"previousId": "anon-7", "userId": "cust-7", "messageId": "a1"}))
	require.Equal(t, http.StatusOK, w.Code, w.Body.String())
	a, err := f.store.ProfileByIdentity(ctx, behavior.Identity{Type: behavior.IdentAnonymous, Value: "anon-7"})
	require.NoError(t, err)
	c, err := f.store.ProfileByIdentity(ctx, behavior.Identity{Type: behavior.IdentCustomer, Namespace: "web/main", Value: "cust-7"})
	require.NoError(t, err)
	require.Equal(t, a.ID, c.ID)
}

func TestSingleCallErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, route string
		body        []byte
		code        int
		want        string
	}{
		{"empty body", "/v1/track", nil, 400, "empty body"},
		{"bad JSON", "/v1/track", []byte(`{"event":`), 400, "invalid JSON"},
		{"trailing data", "/v1/track", []byte(`{"event":"x","anonymousId":"a"} {}`), 400, "unexpected data"},
		{"track without event", "/v1/track", []byte(`{"anonymousId":"a"}`), 400, "without \"event\""},
		{"no identity", "/v1/page", []byte(`{"name":"Home"}`), 400, "\"userId\" or \"anonymousId\" is required"},
		{"alias without previousId", "/v1/alias", []byte(`{"userId":"u"}`), 400, "previousId"},
		{"object as userId", "/v1/page", []byte(`{"userId":{"a":1}}`), 400, "invalid JSON"},
		{"timestamp out of range", "/v1/page", []byte(`{"anonymousId":"a","timestamp":"1900-01-01T00:00:00Z"}`), 400, "out of range"},
		{"forged nudge_id", "/v1/identify", []byte(`{"anonymousId":"a","traits":{"nudge_id":"n1.AAAA"}}`), 400, "nudge_id"},
		{"event over 32 KB", "/v1/track", mustJSON(t, map[string]any{"event": "Big", "anonymousId": "a", "properties": map[string]any{"blob": strings.Repeat("x", 33<<10)}}), 400, "limit"},
		{"numeric userId is fine", "/v1/page", []byte(`{"userId":12345}`), 200, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			f := newFixture(t, testConfig())
			w := f.post(t, tt.route, tt.body)
			require.Equal(t, tt.code, w.Code, w.Body.String())
			require.Equal(t, "application/json; charset=utf-8", w.Header().Get("Content-Type"))
			if tt.code != 200 {
				require.Contains(t, decodeAnswer(t, w).Error, tt.want)
				require.Empty(t, f.records(t))
			}
		})
	}
}

func TestBatchSizeLimits(t *testing.T) {
	t.Parallel()
	f := newFixture(t, testConfig())
	// 500 KB of small valid calls: over the batch limit, all rejected.
	var calls []any
	for i := 0; i*400 <= MaxBatchBytes; i++ {
		calls = append(calls, map[string]any{"type": "page", "anonymousId": "a", "messageId": fmt.Sprint("m", i), "properties": map[string]any{"pad": strings.Repeat("y", 400)}})
	}
	over := mustJSON(t, map[string]any{"batch": calls})
	require.Greater(t, len(over), MaxBatchBytes)
	require.Less(t, len(over), 2*MaxBatchBytes)
	w := f.post(t, "/v1/batch", over)
	require.Equal(t, http.StatusBadRequest, w.Code)
	require.Contains(t, decodeAnswer(t, w).Error, "limit")
	require.Empty(t, f.records(t))

	// One call over 32 KB inside a batch is rejected; the rest is stored.
	big := map[string]any{"type": "track", "event": "Big", "anonymousId": "a", "properties": map[string]any{"blob": strings.Repeat("x", 33<<10)}}
	w = f.post(t, "/v1/batch", mustJSON(t, map[string]any{"batch": []any{big, calls[0]}}))
	require.Equal(t, http.StatusOK, w.Code, w.Body.String())
	a := decodeAnswer(t, w)
	require.Equal(t, 1, a.Stored)
	require.Len(t, a.Rejected, 1)
	require.Contains(t, a.Rejected[0].Error, "32768 byte limit")

	// Gzipped bodies (mobile SDKs) are read, and limited after inflating.
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	_, _ = zw.Write(mustJSON(t, map[string]any{"batch": []any{calls[1]}}))
	require.NoError(t, zw.Close())
	w = f.do(call{path: "/v1/batch", body: gz.Bytes(), key: testKey, headers: map[string]string{"Content-Encoding": "gzip"}})
	require.Equal(t, http.StatusOK, w.Code, w.Body.String())
	require.Equal(t, 1, decodeAnswer(t, w).Stored)
}

func TestWriteKey(t *testing.T) {
	t.Parallel()
	body := func(key string) []byte {
		m := map[string]any{"anonymousId": "a", "event": "X"}
		if key != "" {
			m["writeKey"] = key
		}
		return mustJSON(t, m)
	}
	tests := []struct {
		name    string
		basic   string
		bodyKey string
		code    int
	}{
		{"basic auth user", testKey, "", 200},
		{"writeKey in body", "", testKey, 200},
		{"basic auth wins over body", testKey, "YOUR_WRITE_KEY", 200},
		{"missing", "", "", 401},
		{"wrong basic", "nope", "", 401},
		{"wrong body", "", "nope", 401},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			f := newFixture(t, testConfig())
			w := f.do(call{path: "/v1/track", body: body(tt.bodyKey), key: tt.basic})
			require.Equal(t, tt.code, w.Code, w.Body.String())
			if tt.code == 401 {
				require.NotEmpty(t, decodeAnswer(t, w).Error)
				require.Empty(t, f.records(t))
			}
		})
	}
}

func TestAnalyticsJSRoutes(t *testing.T) {
	t.Parallel()
	f := newFixture(t, testConfig())
	// analytics.js: text/plain to apiHost + "/t", writeKey in the body.
	for path, body := range map[string]string{
		"/v1/t": `{"type":"track","event":"Product Viewed","anonymousId":"ajs","messageId":"j1","writeKey":"` + testKey + `","properties":{"product_id":"p"}}`,
		"/v1/p": `{"type":"page","anonymousId":"ajs","messageId":"j2","writeKey":"` + testKey + `"}`,
		"/v1/i": `{"type":"identify","anonymousId":"ajs","messageId":"j3","writeKey":"` + testKey + `","traits":{"email":"ajs@example.com"}}`,
		"/v1/b": `{"batch":[{"type":"screen","anonymousId":"ajs","messageId":"j4","writeKey":"` + testKey + `"}],"sentAt":"2026-11-28T12:00:00Z"}`,
	} {
		req := httptest.NewRequest(http.MethodPost, path, strings.NewReader(body))
		req.Header.Set("Content-Type", "text/plain")
		w := httptest.NewRecorder()
		f.r.ServeHTTP(w, req)
		require.Equal(t, http.StatusOK, w.Code, "%s: %s", path, w.Body.String())
	}
	kinds := map[behavior.Kind]int{}
	for _, r := range f.records(t) {
		kinds[r.Kind]++
	}
	require.Equal(t, map[behavior.Kind]int{behavior.ProductViewed: 1, behavior.PageViewed: 2, behavior.CustomerUpdated: 1}, kinds)

	// A batch whose calls carry different keys is not authenticated.
	w := f.post(t, "/v1/b", nil)
	require.Equal(t, http.StatusBadRequest, w.Code)
	req := httptest.NewRequest(http.MethodPost, "/v1/b", strings.NewReader(`{"batch":[{"type":"page","anonymousId":"a","writeKey":"`+testKey+`"},{"type":"page","anonymousId":"b","writeKey":"other"}]}`))
	w = httptest.NewRecorder()
	f.r.ServeHTTP(w, req)
	require.Equal(t, http.StatusUnauthorized, w.Code, w.Body.String())
}

func TestRateLimits(t *testing.T) {
	t.Parallel()
	page := func(i int) []byte {
		return mustJSON(t, map[string]any{"anonymousId": "a", "messageId": fmt.Sprint("rl", i)})
	}

	t.Run("per IP", func(t *testing.T) {
		t.Parallel()
		cfg := testConfig()
		cfg.RatePerIP = 1 // burst 4
		f := newFixture(t, cfg)
		for i := 0; i < 4; i++ {
			require.Equal(t, http.StatusOK, f.post(t, "/v1/page", page(i)).Code)
		}
		w := f.post(t, "/v1/page", page(4))
		require.Equal(t, http.StatusTooManyRequests, w.Code)
		require.Equal(t, "1", w.Header().Get("Retry-After"))
		require.Contains(t, decodeAnswer(t, w).Error, "rate limit")
		f.clock.Advance(2 * time.Second)
		require.Equal(t, http.StatusOK, f.post(t, "/v1/page", page(6)).Code, "tokens refill with time")
		require.Len(t, f.records(t), 5)
	})
	t.Run("per key", func(t *testing.T) {
		t.Parallel()
		cfg := testConfig()
		cfg.RatePerKey = 0.5 // burst 2
		f := newFixture(t, cfg)
		require.Equal(t, http.StatusOK, f.post(t, "/v1/page", page(0)).Code)
		require.Equal(t, http.StatusOK, f.post(t, "/v1/page", page(1)).Code)
		w := f.post(t, "/v1/page", page(2))
		require.Equal(t, http.StatusTooManyRequests, w.Code)
		require.Equal(t, "2", w.Header().Get("Retry-After"))
		require.Contains(t, decodeAnswer(t, w).Error, "write key")
	})
}

func TestLimiterForgetsIdleBuckets(t *testing.T) {
	t.Parallel()
	l := newLimiters(1)
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for i := 0; i < 100; i++ {
		require.True(t, l.allow(fmt.Sprint("k", i), 1, now))
	}
	require.Len(t, l.buckets, 100)
	require.True(t, l.allow("fresh", 1, now.Add(time.Hour)))
	require.Len(t, l.buckets, 1)
	require.Nil(t, newLimiters(-1))
	require.Nil(t, newLimiters(0))
	require.True(t, (*limiters)(nil).allow("x", 10, now))
}

func TestCORS(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		allowed  []string
		method   string
		origin   string
		code     int
		reflects bool
	}{
		{"allowed origin preflight", []string{"https://shop.example"}, http.MethodOptions, "https://shop.example", 204, true},
		{"case and trailing slash in config", []string{"HTTPS://Shop.Example/"}, http.MethodOptions, "https://shop.example", 204, true},
		{"other origin preflight", []string{"https://shop.example"}, http.MethodOptions, "https://evil.example", 403, false},
		{"allowed origin post", []string{"https://shop.example"}, http.MethodPost, "https://shop.example", 200, true},
		{"other origin post stores nothing", []string{"https://shop.example"}, http.MethodPost, "https://evil.example", 403, false},
		{"no origin (server, app)", []string{"https://shop.example"}, http.MethodPost, "", 200, false},
		{"wildcard", []string{"*"}, http.MethodPost, "https://anything.example", 200, true},
		{"empty list blocks browsers", nil, http.MethodPost, "https://shop.example", 403, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			cfg := testConfig()
			cfg.AllowedOrigins = tt.allowed
			f := newFixture(t, cfg)
			req := httptest.NewRequest(tt.method, "/v1/track", strings.NewReader(`{"anonymousId":"a","event":"X","writeKey":"`+testKey+`"}`))
			req.Header.Set("Content-Type", "text/plain")
			if tt.origin != "" {
				req.Header.Set("Origin", tt.origin)
			}
			if tt.method == http.MethodOptions {
				req.Header.Set("Access-Control-Request-Method", "POST")
			}
			w := httptest.NewRecorder()
			f.r.ServeHTTP(w, req)
			require.Equal(t, tt.code, w.Code, w.Body.String())
			if tt.reflects {
				require.Equal(t, tt.origin, w.Header().Get("Access-Control-Allow-Origin"))
			} else {
				require.Empty(t, w.Header().Get("Access-Control-Allow-Origin"))
			}
			require.Empty(t, w.Header().Get("Access-Control-Allow-Credentials"))
			if tt.code == 204 {
				require.Contains(t, w.Header().Get("Access-Control-Allow-Methods"), "POST")
				require.Contains(t, w.Header().Get("Access-Control-Allow-Headers"), "Authorization")
			}
			if tt.code == 403 {
				require.Empty(t, f.records(t))
			}
		})
	}
}

func TestPrivacyAndBots(t *testing.T) {
	t.Parallel()
	granted := map[string]any{"consent": map[string]any{"categoryPreferences": map[string]any{"Analytics": true, "Advertising": false}}}
	denied := map[string]any{"consent": map[string]any{"categoryPreferences": map[string]any{"analytics": false, "marketing": false}}}
	tests := []struct {
		name           string
		requireConsent bool
		bots           []string
		headers        map[string]string
		context        map[string]any
		stored         bool
	}{
		{"plain call is stored", false, nil, nil, nil, true},
		{"Sec-GPC drops", false, nil, map[string]string{"Sec-GPC": "1"}, nil, false},
		{"require_consent without consent drops", true, nil, nil, nil, false},
		{"require_consent with consent stores", true, nil, nil, granted, true},
		{"explicit denial drops even when not required", false, nil, nil, denied, false},
		{"Googlebot request UA drops", false, nil, map[string]string{"User-Agent": "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)"}, nil, false},
		{"bot in context.userAgent drops", false, nil, nil, map[string]any{"userAgent": "facebookexternalhit/1.1"}, false},
		{"HeadlessChrome is not a bot by default", false, nil, map[string]string{"User-Agent": "Mozilla/5.0 HeadlessChrome/120.0"}, nil, true},
		{"configured bot list", false, []string{"HeadlessChrome"}, map[string]string{"User-Agent": "Mozilla/5.0 HeadlessChrome/120.0"}, nil, false},
		{"empty bot list drops no one", false, []string{}, map[string]string{"User-Agent": "Googlebot"}, nil, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			cfg := testConfig()
			cfg.RequireConsent = tt.requireConsent
			cfg.BotUserAgents = tt.bots
			f := newFixture(t, cfg)
			m := map[string]any{"anonymousId": "a", "event": "Product Viewed", "properties": map[string]any{"product_id": "p"}}
			if tt.context != nil {
				m["context"] = tt.context
			}
			w := f.do(call{path: "/v1/track", body: mustJSON(t, m), key: testKey, headers: tt.headers})
			require.Equal(t, http.StatusOK, w.Code, "drops answer 200 like Segment: %s", w.Body.String())
			a := decodeAnswer(t, w)
			require.True(t, a.Success)
			if tt.stored {
				require.Len(t, f.records(t), 1)
				require.Zero(t, a.Dropped)
			} else {
				require.Empty(t, f.records(t))
				require.Equal(t, 1, a.Dropped)
				require.NotEmpty(t, w.Header().Get("X-Nudge-Dropped"))
			}
		})
	}
}

func TestNoRawIPStored(t *testing.T) {
	t.Parallel()
	f := newFixture(t, testConfig())
	m := map[string]any{"anonymousId": "a", "event": "Signed Up", "context": map[string]any{"ip": "192.0.2.44"},
		"properties": map[string]any{"ip": "192.0.2.44", "IP": "192.0.2.44", "nested": map[string]any{"ip": "192.0.2.44"}, "plan": "pro"}}
	require.Equal(t, http.StatusOK, f.post(t, "/v1/track", mustJSON(t, m)).Code)
	recs := f.records(t)
	require.Len(t, recs, 1)
	raw := string(mustJSON(t, recs[0]))
	require.NotContains(t, raw, "192.0.2.44")
	require.NotContains(t, raw, "203.0.113.7", "the request's address")
	require.Contains(t, raw, `"plan":"pro"`)
}

func TestClockSkewCorrection(t *testing.T) {
	t.Parallel()
	f := newFixture(t, testConfig())
	now := f.clock.Now()
	tests := []struct {
		name                string
		timestamp, sentAt   string
		want                time.Time
		messageID, original string
	}{
		// Device clock 1 h fast: the event happened 10 s before sending.
		{"fast device clock", "2026-11-28T13:00:00Z", "2026-11-28T13:00:10Z", now.Add(-10 * time.Second), "s1", ""},
		{"no sentAt keeps the timestamp", "2026-01-01T00:00:00Z", "", time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC), "s2", ""},
		{"no timestamp is now", "", "", now, "s3", ""},
		{"originalTimestamp when no timestamp", "", "2026-11-28T11:00:05Z", now.Add(-5 * time.Second), "s4", "2026-11-28T11:00:00Z"},
		{"unix milliseconds", "1764331200000", "", time.UnixMilli(1764331200000).UTC(), "s5", ""},
	}
	for _, tt := range tests {
		m := map[string]any{"anonymousId": "a", "messageId": tt.messageID, "timestamp": tt.timestamp, "sentAt": tt.sentAt, "originalTimestamp": tt.original}
		w := f.post(t, "/v1/page", mustJSON(t, m))
		require.Equal(t, http.StatusOK, w.Code, w.Body.String())
		r, err := f.store.Record(context.Background(), behavior.DeriveID("web", "main", tt.messageID))
		require.NoError(t, err, tt.name)
		require.True(t, tt.want.Equal(r.At), "%s: at %s, want %s", tt.name, r.At, tt.want)
	}
}

func TestNudgeIDIdentifies(t *testing.T) {
	t.Parallel()
	f := newFixture(t, testConfig())
	ctx := context.Background()
	tok := SignIdentity(testSecret, "Reader@Example.com", f.clock.Now().Add(24*time.Hour))
	require.Equal(t, http.StatusOK, f.post(t, "/v1/page", mustJSON(t, map[string]any{"anonymousId": "anon-r", "messageId": "r1"})).Code)
	w := f.post(t, "/v1/identify", mustJSON(t, map[string]any{"anonymousId": "anon-r", "messageId": "r2", "traits": map[string]any{"nudge_id": tok}}))
	require.Equal(t, http.StatusOK, w.Code, w.Body.String())
	p, err := f.store.ProfileByEmail(ctx, "reader@example.com")
	require.NoError(t, err)
	recs, err := f.store.RecordsByProfile(ctx, p.ID, storage.RecordQuery{})
	require.NoError(t, err)
	require.Len(t, recs, 2, "the earlier anonymous page view joined the reader's profile")

	other := SignIdentity([]byte("another secret"), "victim@example.com", f.clock.Now().Add(time.Hour))
	expired := SignIdentity(testSecret, "late@example.com", f.clock.Now().Add(-time.Minute))
	for name, tok := range map[string]string{"other secret": other, "expired": expired, "garbage": "n1.!!!"} {
		w := f.post(t, "/v1/identify", mustJSON(t, map[string]any{"anonymousId": "anon-x", "traits": map[string]any{"nudge_id": tok}}))
		require.Equal(t, http.StatusBadRequest, w.Code, name)
	}
	_, err = f.store.ProfileByEmail(ctx, "victim@example.com")
	require.ErrorIs(t, err, storage.ErrNotFound)
}

func TestScriptServed(t *testing.T) {
	t.Parallel()
	cfg := testConfig()
	cfg.RequireConsent = true
	f := newFixture(t, cfg)
	get := func(h map[string]string) *httptest.ResponseRecorder {
		req := httptest.NewRequest(http.MethodGet, "/t.js", nil)
		for k, v := range h {
			req.Header.Set(k, v)
		}
		w := httptest.NewRecorder()
		f.r.ServeHTTP(w, req)
		return w
	}
	w := get(nil)
	require.Equal(t, http.StatusOK, w.Code)
	require.Equal(t, "application/javascript; charset=utf-8", w.Header().Get("Content-Type"))
	require.Contains(t, w.Header().Get("Cache-Control"), "max-age=3600")
	require.Contains(t, w.Body.String(), `{"requireConsent":true}`, "server config is injected")
	require.NotContains(t, w.Body.String(), scriptConfigMarker)

	gz := get(map[string]string{"Accept-Encoding": "gzip, deflate, br"})
	require.Equal(t, "gzip", gz.Header().Get("Content-Encoding"))
	gzLen := gz.Body.Len()
	zr, err := gzip.NewReader(gz.Body)
	require.NoError(t, err)
	plain, err := io.ReadAll(zr)
	require.NoError(t, err)
	require.Equal(t, w.Body.String(), string(plain))
	require.Less(t, gzLen, 5*1024, "t.js must stay under 5 KB gzipped")
	_, gzSize := f.h.ScriptSize()
	require.Equal(t, gzLen, gzSize)

	require.Equal(t, http.StatusNotModified, get(map[string]string{"If-None-Match": w.Header().Get("ETag")}).Code)
	require.Empty(t, get(map[string]string{"Accept-Encoding": "gzip;q=0"}).Header().Get("Content-Encoding"))
}

func TestSample(t *testing.T) {
	t.Parallel()
	want := map[string]behavior.Kind{
		"page_viewed": behavior.PageViewed, "product_viewed": behavior.ProductViewed, "collection_viewed": behavior.CollectionViewed,
		"searched": behavior.Searched, "cart_updated": behavior.CartUpdated, "checkout_started": behavior.CheckoutStarted,
		"order_placed": behavior.OrderPlaced, "identify": behavior.CustomerUpdated,
	}
	require.Len(t, SampleEvents(), len(want))
	for _, ev := range SampleEvents() {
		t.Run(ev, func(t *testing.T) {
			t.Parallel()
			f := newFixture(t, testConfig())
			path, body, h, err := Sample(ev, "x@example.com", testKey)
			require.NoError(t, err)
			req := httptest.NewRequest(http.MethodPost, path, bytes.NewReader(body))
			req.Header = h
			w := httptest.NewRecorder()
			f.r.ServeHTTP(w, req)
			require.Equal(t, http.StatusOK, w.Code, w.Body.String())
			recs := f.records(t)
			require.Len(t, recs, 1)
			require.Equal(t, want[ev], recs[0].Kind)
			require.Equal(t, "x@example.com", recs[0].Email)
			require.Equal(t, "Basic "+base64.StdEncoding.EncodeToString([]byte(testKey+":")), h.Get("Authorization"))
		})
	}
	_, _, _, err := Sample("nope", "", testKey)
	require.ErrorIs(t, err, ErrUnknownSample)
	_, _, _, err = Sample("searched", "not-an-email", testKey)
	require.Error(t, err)
}

func TestMoney(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in       any
		currency string
		want     int64
	}{
		{json.Number("18.99"), "USD", 1899},
		{json.Number("19"), "USD", 1900},
		{json.Number("0.1"), "USD", 10},
		{json.Number("2.675"), "USD", 268}, // float64 would give 267
		{json.Number("1e2"), "USD", 10000},
		{json.Number("5400"), "JPY", 5400},
		{json.Number("1.234"), "KWD", 1234},
		{"39.95", "USD", 3995},
		{"$12.50", "USD", 1250},
		{"abc", "USD", 0},
		{true, "USD", 0},
		{nil, "USD", 0},
	}
	for _, tt := range tests {
		require.Equal(t, tt.want, money(tt.in, tt.currency), "%v %s", tt.in, tt.currency)
	}
}

func TestNewValidates(t *testing.T) {
	t.Parallel()
	_, err := New(Config{}, nil, Options{})
	require.ErrorContains(t, err, "write_key")
	_, err = New(Config{WriteKey: "k"}, nil, Options{})
	require.ErrorContains(t, err, "nil store")
}
