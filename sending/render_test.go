package sending

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/nudge-email/nudge/behavior"
	"github.com/nudge-email/nudge/config"
	"github.com/nudge-email/nudge/connectors"
	"github.com/nudge-email/nudge/dispatch"
	"github.com/nudge-email/nudge/storage"
)

type fakeRecommender struct {
	products []storage.Product
	err      error
}

func (f fakeRecommender) Recommend(_ context.Context, _ string, n int) ([]storage.Product, error) {
	if len(f.products) > n+1 {
		return f.products[:n+1], f.err // more than asked: the caller must cut
	}
	return f.products, f.err
}

func writeFile(t *testing.T, dir, name, content string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	require.NoError(t, os.WriteFile(p, []byte(content), 0o600))
	return p
}

func TestTemplateDataFollowsContract(t *testing.T) {
	var recs []storage.Product
	for i := range 6 {
		recs = append(recs, storage.Product{ProductID: "r" + string(rune('0'+i)), Title: "Sock", URL: "https://example.com/s", ImageURL: "https://cdn/s.jpg", Price: 990})
	}
	h := newHarness(t, func(o *Options) {
		o.Stores = []config.Store{
			{ID: "main", Name: "Example Store", URL: "https://example.com", Currency: "USD"},
			{ID: "eu", Name: "Example EU", URL: "https://example.eu", Currency: "EUR"},
		}
		o.Recommender = fakeRecommender{products: recs}
	})
	p := h.profile("ann@example.com", behavior.ConsentGranted, "")
	tr := h.checkout("ann@example.com", t0.Add(-time.Hour))
	tr.Store, tr.Currency = "eu", "EUR"
	s := h.step(p, tr, "j1", 2)

	msg, err := h.d.Render(h.ctx, s)
	require.NoError(t, err)
	raw, err := json.Marshal(msg.TemplateData)
	require.NoError(t, err)
	var data map[string]any
	require.NoError(t, json.Unmarshal(raw, &data))

	sendID := SendID("j1", 2)
	assert.Equal(t, map[string]any{"email": "ann@example.com", "first_name": "Ann", "last_name": "Lee"}, data["customer"])
	assert.Equal(t, []any{map[string]any{
		"product_id": "p1", "title": "Trail Runner", "url": "https://example.com/p/trail",
		"image_url": "https://cdn.example.com/trail.jpg", "price": "€54.00", "quantity": float64(1),
	}}, data["items"])
	assert.Len(t, data["recommendations"], 4)
	assert.Equal(t, "€9.90", data["recommendations"].([]any)[0].(map[string]any)["price"])
	assert.Equal(t, "https://example.com/checkouts/abc/recover", data["recovery_url"])
	assert.Equal(t, "https://nudge.example.com/u/"+h.d.UnsubscribeToken("ann@example.com", sendID), data["unsubscribe_url"])
	assert.Equal(t, map[string]any{"name": "Example EU", "url": "https://example.eu"}, data["store"])
	assert.Equal(t, "cart-abandonment", data["rule"])
	assert.Equal(t, float64(2), data["step"])
	assert.Equal(t, "WELCOME10", data["discount_code"])
	assert.Equal(t, sendID, msg.SendID)
	assert.Equal(t, "Ann Lee", msg.To.Name)
}

// The audit's case: a cart reminder recommended the product in the cart.
func TestRecommendationsLeaveOutTheTriggersItems(t *testing.T) {
	recs := []storage.Product{{ProductID: "p1", Title: "Trail Runner", Price: 5400}} // the checkout's own item, ranked first
	for i := range 5 {
		recs = append(recs, storage.Product{ProductID: "r" + string(rune('0'+i)), Title: "Sock", Price: 990})
	}
	h := newHarness(t, func(o *Options) { o.Recommender = fakeRecommender{products: recs} })
	p := h.profile("ann@example.com", behavior.ConsentGranted, "")
	msg, err := h.d.Render(h.ctx, h.step(p, h.checkout("ann@example.com", t0), "j1", 1))
	require.NoError(t, err)
	got := msg.TemplateData["recommendations"].([]map[string]any)
	var ids []string
	for _, r := range got {
		ids = append(ids, r["product_id"].(string))
	}
	assert.Equal(t, []string{"r0", "r1", "r2", "r3"}, ids)
}

func TestRecommendationsAreAnEmptyListWithoutRecommender(t *testing.T) {
	for _, rec := range []Recommender{nil, fakeRecommender{err: errors.New("model not fitted")}} {
		h := newHarness(t, func(o *Options) { o.Recommender = rec })
		p := h.profile("ann@example.com", behavior.ConsentGranted, "")
		msg, err := h.d.Render(h.ctx, h.step(p, h.checkout("ann@example.com", t0), "j1", 1))
		require.NoError(t, err)
		raw, _ := json.Marshal(msg.TemplateData["recommendations"])
		assert.Equal(t, "[]", string(raw))
	}
}

func TestLocalTemplatesEscapeHTMLAndReload(t *testing.T) {
	dir := t.TempDir()
	htmlPath := writeFile(t, dir, "cart.html", `<h1>Hi {{.customer.first_name}}</h1>{{range .items}}<a href="{{.url}}">{{.title}}</a> {{.price}}{{end}}<a href="{{.unsubscribe_url}}">unsubscribe</a>`)
	textPath := writeFile(t, dir, "cart.txt", `{{range .items}}{{.title}} {{.price}}{{end}}`)
	h := newHarness(t)
	p := h.profile("ann@example.com", behavior.ConsentGranted, "")
	tr := h.checkout("ann@example.com", t0)
	tr.Items[0].Title = `<script>alert("x")</script> & Co`
	s := h.step(p, tr, "j1", 1)
	s.Send = dispatch.SendSpec{Subject: "{{.customer.first_name}}, your\n{{(index .items 0).title}}", HTMLFile: htmlPath, TextFile: textPath}

	msg, err := h.d.Render(h.ctx, s)
	require.NoError(t, err)
	assert.Empty(t, msg.TemplateID)
	assert.Equal(t, `Ann, your <script>alert("x")</script> & Co`, msg.Subject, "subject is text; one line")
	assert.Contains(t, msg.HTML, `&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt; &amp; Co`)
	assert.NotContains(t, msg.HTML, "<script>")
	assert.Contains(t, msg.HTML, `href="https://example.com/p/trail"`)
	assert.Contains(t, msg.HTML, `href="https://nudge.example.com/u/`)
	assert.Equal(t, `<script>alert("x")</script> & Co $54.00`, msg.Text)

	// The stored form keeps the HTML readable (no \u003c) and decodes
	// to the same message.
	raw, err := jsonMarshal(msg)
	require.NoError(t, err)
	assert.Contains(t, string(raw), `<h1>Hi Ann</h1>`)
	assert.NotContains(t, string(raw), `\u003c`)
	var back connectors.Message
	require.NoError(t, json.Unmarshal(raw, &back))
	assert.Equal(t, msg, back)

	// Editing the file takes effect without a restart.
	later := time.Now().Add(time.Hour)
	writeFile(t, dir, "cart.txt", `v2 {{len .items}}`)
	require.NoError(t, os.Chtimes(textPath, later, later))
	msg, err = h.d.Render(h.ctx, s)
	require.NoError(t, err)
	assert.Equal(t, "v2 1", msg.Text)

	// A template error names the problem.
	writeFile(t, dir, "cart.txt", `{{.items | nosuchfunc}}`)
	require.NoError(t, os.Chtimes(textPath, later.Add(time.Hour), later.Add(time.Hour)))
	_, err = h.d.Render(h.ctx, s)
	assert.ErrorIs(t, err, ErrTemplate)
	assert.True(t, strings.Contains(err.Error(), "nosuchfunc"), err.Error())
}

func TestItemsFilledFromCatalog(t *testing.T) {
	h := newHarness(t)
	h.append(behavior.Record{Kind: behavior.ProductUpdated, Source: "shopify", Store: "main", At: t0.Add(-time.Hour),
		Items: []behavior.Item{{ProductID: "p9", Title: "Rain Jacket", URL: "https://example.com/p/rain", ImageURL: "https://cdn/rain.jpg", Price: 12000}}})
	p := h.profile("ann@example.com", behavior.ConsentGranted, "")
	tr := behavior.Record{Kind: behavior.BackInStock, Source: "nudge", Store: "main", At: t0, Email: "ann@example.com",
		Items: []behavior.Item{{ProductID: "p9", Price: 12000}}}
	msg, err := h.d.Render(h.ctx, h.step(p, tr, "j1", 1))
	require.NoError(t, err)
	item := msg.TemplateData["items"].([]map[string]any)[0]
	assert.Equal(t, "Rain Jacket", item["title"])
	assert.Equal(t, "https://cdn/rain.jpg", item["image_url"])
	assert.Equal(t, "$120.00", item["price"])
}

// Links in emails point only at the shop: the audit had a tracking call
// (public write key) put https://evil.example/phish into a real
// customer's cart reminder.
func TestTemplateLinksStayOnTheShop(t *testing.T) {
	h := newHarness(t, func(o *Options) { o.LinkHosts = []string{"shop.example.net"} })
	p := h.profile("ann@example.com", behavior.ConsentGranted, "")
	tests := []struct {
		url, image       string
		wantURL, wantImg string
	}{
		{"https://evil.example/phish", "https://evil.example/a.png", "https://example.com", "https://evil.example/a.png"},
		{"https://example.com/products/trail", "javascript:alert(1)", "https://example.com/products/trail", ""},
		{"https://www.example.com/products/trail", "data:image/png;base64,AAAA", "https://www.example.com/products/trail", ""},
		{"https://shop.example.net/p/1", "http://cdn.example.org/1.jpg", "https://shop.example.net/p/1", "http://cdn.example.org/1.jpg"},
		{"https://example.com.evil.example/x", "", "https://example.com", ""},
		{"https://user@example.com/x", "", "https://example.com", ""},
		{"javascript:alert(1)", "", "https://example.com", ""},
		{"", "", "https://example.com", ""}, // no link: the store, never an empty href
	}
	for i, tc := range tests {
		r := behavior.Record{
			ID: fmt.Sprintf("web-%d", i), Kind: behavior.CheckoutStarted, Source: "web", Store: "main", At: t0, Email: "ann@example.com",
			Items: []behavior.Item{{ProductID: fmt.Sprintf("x%d", i), Title: "Trail", URL: tc.url, ImageURL: tc.image, Price: 100, Quantity: 1}},
		}
		tr := h.append(r)[0]
		msg, err := h.d.Render(h.ctx, h.step(p, tr, fmt.Sprintf("j%d", i), 1))
		require.NoError(t, err)
		item := msg.TemplateData["items"].([]map[string]any)[0]
		assert.Equal(t, tc.wantURL, item["url"], "url %q", tc.url)
		assert.Equal(t, tc.wantImg, item["image_url"], "image %q", tc.image)
	}
}
