package web

import (
	"context"
	"errors"
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

	"github.com/chromedp/chromedp"
	"github.com/gin-gonic/gin"
	"github.com/stretchr/testify/require"

	"github.com/nudge-email/nudge/behavior"
	"github.com/nudge-email/nudge/storage"
)

const chromiumPath = "/usr/bin/chromium"

// storefront pages served next to the handler, as a shop would serve them.
func storefrontPage(title, body string) string {
	return `<!doctype html><html><head><meta charset="utf-8"><title>` + title + `</title>
<script>window.nudge=window.nudge||function(){(window.nudge.q=window.nudge.q||[]).push(arguments)};</script>
<script src="/t.js" data-key="` + testKey + `" async></script></head><body>` + body + `</body></html>`
}

// TestBrowserStorefront loads a storefront page with /t.js in real headless
// Chromium, views a product, searches, stays a few seconds, subscribes to
// the newsletter and leaves; the store must then hold product_viewed,
// searched and page_viewed with seconds on page for that visitor, merged
// into the email's profile.
// browserServer is the handler over a real store, served with storefront
// pages from one httptest server, so the page and the API share an origin.
type browserServer struct {
	srv    *httptest.Server
	engine *gin.Engine
	store  *storage.DB
}

func newBrowserServer(t *testing.T, tweak ...func(*Config)) *browserServer {
	t.Helper()
	if _, err := os.Stat(chromiumPath); err != nil {
		t.Skipf("Chromium not found at %s (apt-get install chromium); CI installs it: %v", chromiumPath, err)
	}
	if testing.Short() {
		t.Skip("browser test skipped in -short mode")
	}
	gin.SetMode(gin.TestMode)
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	st, err := storage.Open(filepath.Join(t.TempDir(), "nudge.db"), storage.Options{Logger: logger})
	require.NoError(t, err)
	t.Cleanup(func() { _ = st.Close() })
	b := &browserServer{store: st, engine: gin.New()}
	b.srv = httptest.NewServer(b.engine)
	t.Cleanup(b.srv.Close)
	cfg := testConfig()
	cfg.AllowedOrigins = []string{b.srv.URL}
	cfg.RatePerIP, cfg.RatePerKey = 0, 0 // the defaults
	for _, f := range tweak {
		f(&cfg)
	}
	h, err := New(cfg, st, Options{Logger: logger})
	require.NoError(t, err)
	h.Register(b.engine)
	return b
}

func (b *browserServer) page(path, html string) {
	b.engine.GET(path, func(c *gin.Context) { c.Data(http.StatusOK, "text/html; charset=utf-8", []byte(html)) })
}

// newBrowser starts headless Chromium with a throwaway profile and returns
// a context for running actions, bounded by timeout.
func newBrowser(t *testing.T, timeout time.Duration) context.Context {
	t.Helper()
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(chromiumPath),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.NoFirstRun,
	)
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	t.Cleanup(cancelAlloc)
	bctx, cancelBrowser := chromedp.NewContext(actx)
	t.Cleanup(cancelBrowser)
	// The first run starts the browser and must not carry a timeout.
	require.NoError(t, chromedp.Do(bctx, chromedp.Navigate("about:blank")))
	ctx, cancel := context.WithTimeout(bctx, timeout)
	t.Cleanup(cancel)
	return ctx
}

// waitRecords polls the store until the visitor's records satisfy ok.
func waitRecords(t *testing.T, st *storage.DB, anon string, ok func([]behavior.Record) bool) []behavior.Record {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		recs, err := visitorRecords(st, anon)
		if err == nil && ok(recs) {
			return recs
		}
		if time.Now().After(deadline) {
			t.Fatalf("records for visitor %s after 15 s: %s (err %v)", anon, describe(recs), err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// TestBrowserStorefront loads a storefront page with /t.js in real headless
// Chromium, views a product, searches, stays a few seconds, subscribes to
// the newsletter and leaves; the store must then hold product_viewed,
// searched and page_viewed with seconds on page for that visitor, merged
// into the email's profile.
func TestBrowserStorefront(t *testing.T) {
	b := newBrowserServer(t)
	srv, st := b.srv, b.store
	b.page("/products/trail-runner", storefrontPage("Trail Runner", `
<main data-nudge-product="p-trail" data-nudge-name="Trail Runner" data-nudge-price="54.00" data-nudge-currency="USD" data-nudge-category="Shoes">
  <h1>Trail Runner</h1>
  <form action="/search" method="get" role="search"><input type="search" name="q" id="q"><button id="go">Search</button></form>
</main>`))
	b.page("/search", storefrontPage("Search", `
<h1>Results</h1>
<form id="news" action="/bye" method="get"><input type="email" name="email" id="email"><button id="join">Join</button></form>`))
	b.page("/bye", `<!doctype html><title>bye</title><p>bye</p>`)
	ctx := newBrowser(t, 90*time.Second)

	loaded := chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
		_, err := chromedp.Poll[bool](`window.nudge && window.nudge.loaded === true`, chromedp.WithPollingTimeout(10*time.Second))(ctx, tg)
		return err
	})
	var anon, cookies string
	err := chromedp.Do(ctx,
		chromedp.Navigate(srv.URL+"/products/trail-runner"),
		chromedp.WaitVisible(chromedp.ID("q")),
		loaded,
		// Read the product page for a while: time on page is visible time.
		chromedp.Sleep(2500*time.Millisecond),
		chromedp.SendKeys(chromedp.ID("q"), "trail shoes"),
		chromedp.Click(chromedp.ID("go")),
		chromedp.WaitVisible(chromedp.ID("email")),
		loaded,
		chromedp.Func(func(ctx context.Context, tg *chromedp.Target) (err error) {
			cookies, err = chromedp.Evaluate[string](`document.cookie`)(ctx, tg)
			return err
		}),
		chromedp.Sleep(1500*time.Millisecond),
		// Subscribing to the newsletter names the visitor; submitting
		// leaves the page.
		chromedp.SendKeys(chromedp.ID("email"), "Browser.Buyer@example.com"),
		chromedp.Click(chromedp.ID("join")),
		chromedp.WaitReady(chromedp.CSS("p")),
		chromedp.Sleep(300*time.Millisecond),
		chromedp.Navigate("about:blank"),
	)
	require.NoError(t, err)
	for _, c := range strings.Split(cookies, ";") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(c), "nudge_aid="); ok {
			anon = v
		}
	}
	require.NotEmpty(t, anon, "first-party anonymous id cookie; cookies: %q", cookies)

	// Beacons are asynchronous: wait for the records to land.
	want := []behavior.Kind{behavior.ProductViewed, behavior.Searched, behavior.PageViewed, behavior.CustomerUpdated}
	recs := waitRecords(t, st, anon, func(r []behavior.Record) bool { return hasAll(r, want) && pageViews(r) >= 2 })
	t.Logf("visitor %s: %s", anon, describe(recs))
	var productPageSeconds float64
	for _, r := range recs {
		require.Equal(t, anon, r.AnonymousID)
		switch r.Kind {
		case behavior.ProductViewed:
			require.Equal(t, "p-trail", r.Items[0].ProductID)
			require.Equal(t, int64(5400), r.Items[0].Price)
			require.Equal(t, "Trail Runner", r.Items[0].Title)
		case behavior.Searched:
			require.Equal(t, "trail shoes", r.Query)
		case behavior.PageViewed:
			require.Greater(t, r.Seconds, 0.0, "page %s", r.URL)
			if strings.HasSuffix(r.URL, "/products/trail-runner") {
				productPageSeconds = r.Seconds
			}
		case behavior.CustomerUpdated:
			require.Equal(t, "browser.buyer@example.com", r.Email)
		}
	}
	require.GreaterOrEqual(t, productPageSeconds, 2.0, "the product page was read for 2.5 s")
	require.Less(t, productPageSeconds, 30.0)

	// The newsletter email's profile holds the anonymous browsing.
	p, err := st.ProfileByEmail(context.Background(), "browser.buyer@example.com")
	require.NoError(t, err)
	merged, err := st.RecordsByProfile(context.Background(), p.ID, storage.RecordQuery{})
	require.NoError(t, err)
	require.True(t, hasAll(merged, want), "merged profile: %s", describe(merged))
}

func visitorRecords(st *storage.DB, anon string) ([]behavior.Record, error) {
	ctx := context.Background()
	p, err := st.ProfileByIdentity(ctx, behavior.Identity{Type: behavior.IdentAnonymous, Value: anon})
	if errors.Is(err, storage.ErrNotFound) {
		return nil, err
	}
	if err != nil {
		return nil, err
	}
	return st.RecordsByProfile(ctx, p.ID, storage.RecordQuery{})
}

func hasAll(recs []behavior.Record, kinds []behavior.Kind) bool {
	seen := map[behavior.Kind]bool{}
	for _, r := range recs {
		seen[r.Kind] = true
	}
	for _, k := range kinds {
		if !seen[k] {
			return false
		}
	}
	return true
}

func pageViews(recs []behavior.Record) int {
	n := 0
	for _, r := range recs {
		if r.Kind == behavior.PageViewed {
			n++
		}
	}
	return n
}

func describe(recs []behavior.Record) string {
	var parts []string
	for _, r := range recs {
		parts = append(parts, fmt.Sprintf("%s(url=%s q=%q s=%.1f email=%s)", r.Kind, r.URL, r.Query, r.Seconds, r.Email))
	}
	return "[" + strings.Join(parts, ", ") + "]"
}

// pixelHarness stands in for Shopify's pixel sandbox: it defines the
// analytics, init and customerPrivacy globals, runs the documented Custom
// Pixel snippet, then fires the seven standard events in the shapes of
// @shopify/web-pixels-extension (PROTOCOLS §1.7).
func pixelHarness(snippet, clientID string) string {
	return `<!doctype html><html><head><title>pixel</title></head><body><script>
var handlers = {};
var analytics = { subscribe: function (name, cb) { handlers[name] = cb; } };
var init = { customerPrivacy: { analyticsProcessingAllowed: true, marketingAllowed: true } };
var customerPrivacy = { subscribe: function () {} };
</script><script>` + snippet + `</script><script>
function ev(name, id, data) {
  return { id: id, clientId: "` + clientID + `", name: name, seq: 1, type: "standard", timestamp: new Date().toISOString(),
    context: { document: { location: { href: "https://shop.example/products/trail-runner", host: "shop.example", pathname: "/products/trail-runner", search: "" },
      referrer: "", title: "Trail Runner", characterSet: "UTF-8" }, navigator: { userAgent: navigator.userAgent }, window: {} },
    data: data };
}
var variant = { id: "gid://shopify/ProductVariant/42", image: { src: "https://cdn.example/tr.jpg" }, price: { amount: 54.5, currencyCode: "USD" },
  product: { id: "gid://shopify/Product/7", title: "Trail Runner", type: "Shoes", untranslatedTitle: "Trail Runner", url: "/products/trail-runner", vendor: "Acme" },
  sku: "TR-42", title: "Blue / 42", untranslatedTitle: "Blue / 42" };
var checkout = { token: "ck-` + clientID + `", email: "` + clientID + `@example.com", currencyCode: "USD", buyerAcceptsEmailMarketing: true,
  totalPrice: { amount: 109, currencyCode: "USD" }, subtotalPrice: { amount: 109, currencyCode: "USD" },
  lineItems: [{ id: "li1", title: "Trail Runner", quantity: 2, variant: variant }], order: null };
handlers.page_viewed(ev("page_viewed", "` + clientID + `-1", {}));
handlers.product_viewed(ev("product_viewed", "` + clientID + `-2", { productVariant: variant }));
handlers.collection_viewed(ev("collection_viewed", "` + clientID + `-3", { collection: { id: "gid://shopify/Collection/3", title: "Shoes", productVariants: [variant] } }));
handlers.search_submitted(ev("search_submitted", "` + clientID + `-4", { searchResult: { query: "trail", productVariants: [variant] } }));
handlers.product_added_to_cart(ev("product_added_to_cart", "` + clientID + `-5", { cartLine: { cost: { totalAmount: { amount: 109, currencyCode: "USD" } }, merchandise: variant, quantity: 2 } }));
handlers.checkout_started(ev("checkout_started", "` + clientID + `-6", { checkout: checkout }));
checkout.order = { id: "gid://shopify/Order/9", customer: { id: "gid://shopify/Customer/5", isFirstOrder: true } };
handlers.checkout_completed(ev("checkout_completed", "` + clientID + `-7", { checkout: checkout }));
</script></body></html>`
}

// TestShopifyCustomPixel runs the Custom Pixel snippet documented in
// docs/tracking.md in Chromium against the handler, in both checkout modes.
func TestShopifyCustomPixel(t *testing.T) {
	b := newBrowserServer(t)
	snippet := string(readFile(t, "shopify_pixel.js"))
	doc, err := os.ReadFile(filepath.Join("..", "..", "docs", "tracking.md"))
	require.NoError(t, err)
	require.Contains(t, string(doc), snippet, "docs/tracking.md shows the tested snippet verbatim")

	configure := func(forward bool) string {
		s := strings.Replace(snippet, `"https://nudge.example.com"`, `"`+b.srv.URL+`"`, 1)
		s = strings.Replace(s, `"your-write-key"`, `"`+testKey+`"`, 1)
		if forward {
			s = strings.Replace(s, "const FORWARD_CHECKOUTS = false;", "const FORWARD_CHECKOUTS = true;", 1)
		}
		return s
	}
	b.page("/pixel-default", pixelHarness(configure(false), "client-a"))
	b.page("/pixel-forward", pixelHarness(configure(true), "client-b"))
	ctx := newBrowser(t, 60*time.Second)
	require.NoError(t, chromedp.Do(ctx,
		chromedp.Navigate(b.srv.URL+"/pixel-default"),
		chromedp.Navigate(b.srv.URL+"/pixel-forward"),
	))

	tests := []struct {
		client    string
		checkouts []behavior.Kind
	}{
		{"client-a", []behavior.Kind{"custom:Pixel Checkout Started", "custom:Pixel Checkout Completed"}},
		{"client-b", []behavior.Kind{behavior.CheckoutStarted, behavior.OrderPlaced}},
	}
	for _, tt := range tests {
		want := append([]behavior.Kind{behavior.PageViewed, behavior.ProductViewed, behavior.CollectionViewed, behavior.Searched, behavior.CartUpdated}, tt.checkouts...)
		recs := waitRecords(t, b.store, tt.client, func(r []behavior.Record) bool { return len(r) >= len(want) && hasAll(r, want) })
		t.Logf("%s: %s", tt.client, describe(recs))
		require.Len(t, recs, len(want))
		for _, r := range recs {
			switch r.Kind {
			case behavior.ProductViewed:
				require.Equal(t, []behavior.Item{{ProductID: "gid://shopify/Product/7", VariantID: "gid://shopify/ProductVariant/42", SKU: "TR-42",
					Title: "Trail Runner", URL: "/products/trail-runner", ImageURL: "https://cdn.example/tr.jpg", Price: 5450, Quantity: 1, Category: "Shoes"}}, r.Items)
			case behavior.Searched:
				require.Equal(t, "trail", r.Query)
			case behavior.CartUpdated:
				require.Equal(t, 2, r.Items[0].Quantity)
			case behavior.CheckoutStarted, behavior.OrderPlaced:
				require.Equal(t, int64(10900), r.Value)
				require.Equal(t, tt.client+"@example.com", r.Email)
				require.Equal(t, "ck-"+tt.client, r.Ref(behavior.RefCheckoutToken))
			}
			if strings.HasPrefix(string(r.Kind), behavior.CustomPrefix) {
				require.Equal(t, tt.client+"@example.com", r.Email, "checkout events identify the buyer")
			}
		}
		p, err := b.store.ProfileByEmail(context.Background(), tt.client+"@example.com")
		require.NoError(t, err)
		require.Contains(t, p.Identities, behavior.Identity{Type: behavior.IdentAnonymous, Value: tt.client}, "browsing joined the buyer")
	}
}

// TestBrowserConsentAndGPC checks the script's privacy modes in Chromium:
// with require_consent nothing is sent and no cookie is set until the page
// grants consent; with Global Privacy Control nothing is ever sent.
func TestBrowserConsentAndGPC(t *testing.T) {
	b := newBrowserServer(t, func(c *Config) { c.RequireConsent = true })
	product := `<main data-nudge-product="p-consent" data-nudge-name="Consent Shoe" data-nudge-price="10"></main>`
	b.page("/consent", storefrontPage("Consent", product))
	gpc := strings.Replace(storefrontPage("GPC", product), "<script>", `<script>Object.defineProperty(navigator, "globalPrivacyControl", {value: true});</script><script>`, 1)
	b.page("/gpc", gpc)
	ctx := newBrowser(t, 60*time.Second)
	eval := func(expr string, dst *string) chromedp.Action[chromedp.Void] {
		return chromedp.Func(func(ctx context.Context, tg *chromedp.Target) (err error) {
			*dst, err = chromedp.Evaluate[string](expr)(ctx, tg)
			return err
		})
	}
	loaded := chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
		_, err := chromedp.Poll[bool](`window.nudge && window.nudge.loaded === true`, chromedp.WithPollingTimeout(10*time.Second))(ctx, tg)
		return err
	})
	count := func() int {
		n := 0
		require.NoError(t, b.store.ScanRecords(context.Background(), time.Time{}, time.Time{}, func(behavior.Record) error { n++; return nil }))
		return n
	}

	var before, after, cookie, gpcState string
	require.NoError(t, chromedp.Do(ctx,
		chromedp.Navigate(b.srv.URL+"/gpc"),
		loaded,
		// Even granted consent sends nothing under GPC.
		chromedp.Evaluate[chromedp.Void](`nudge("consent", true); nudge("identify", "gpc@example.com"); nudge("flush")`),
		chromedp.Sleep(800*time.Millisecond),
		eval(`document.cookie + "|" + Object.keys(localStorage).join(",")`, &gpcState),
		chromedp.Navigate(b.srv.URL+"/consent"),
		loaded,
		chromedp.Sleep(800*time.Millisecond),
		eval(`document.cookie + "|" + (localStorage.getItem("nudge_aid") || "")`, &before),
	))
	require.Equal(t, "|", gpcState, "GPC: no cookie, no storage")
	require.Equal(t, "|", before, "no cookie or storage before consent")
	require.Zero(t, count(), "nothing sent before consent, nor under GPC")

	require.NoError(t, chromedp.Do(ctx,
		chromedp.Evaluate[chromedp.Void](`nudge("consent", true)`),
		chromedp.Sleep(500*time.Millisecond),
		eval(`document.cookie`, &after),
	))
	for _, c := range strings.Split(after, ";") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(c), "nudge_aid="); ok {
			cookie = v
		}
	}
	require.NotEmpty(t, cookie, "consent creates the anonymous id")
	recs := waitRecords(t, b.store, cookie, func(r []behavior.Record) bool { return hasAll(r, []behavior.Kind{behavior.ProductViewed}) })
	require.Equal(t, "p-consent", recs[0].Items[0].ProductID, "the product view held before consent is sent after it")

	// Withdrawing consent deletes the id and stops sending.
	require.NoError(t, chromedp.Do(ctx,
		chromedp.Evaluate[chromedp.Void](`nudge("consent", false); nudge("track", "After Withdrawal")`),
		chromedp.Sleep(300*time.Millisecond),
		eval(`document.cookie + "|" + (localStorage.getItem("nudge_aid") || "")`, &after),
		chromedp.Navigate("about:blank"),
		chromedp.Sleep(300*time.Millisecond),
	))
	require.NotContains(t, after, cookie)
	for _, r := range mustRecords(t, b.store) {
		require.NotEqual(t, behavior.Kind("custom:After Withdrawal"), r.Kind)
		require.NotEqual(t, behavior.PageViewed, r.Kind, "the page view after withdrawal is not sent")
	}
}

func mustRecords(t *testing.T, st *storage.DB) []behavior.Record {
	t.Helper()
	var out []behavior.Record
	require.NoError(t, st.ScanRecords(context.Background(), time.Time{}, time.Time{}, func(r behavior.Record) error {
		out = append(out, r)
		return nil
	}))
	return out
}

// TestBrowserProductDetection covers the script's other product sources in
// Chromium: Shopify's ShopifyAnalytics.meta (with the selected ?variant=),
// JSON-LD, a Shopify add-to-cart form, a collection page and a
// nudge('product') data-layer call.
func TestBrowserProductDetection(t *testing.T) {
	b := newBrowserServer(t)
	b.page("/products/shopify", storefrontPage("Shopify Tee", `
<script>window.ShopifyAnalytics = {meta: {currency: "EUR", page: {pageType: "product", resourceId: 7},
  product: {id: 7, vendor: "Acme", type: "Shirts", variants: [
    {id: 71, price: 1999, name: "Tee - S", sku: "TEE-S"},
    {id: 72, price: 2499, name: "Tee - XL", sku: "TEE-XL"}]}}};</script>
<form action="/cart/add" method="post" id="buy"><input type="hidden" name="id" value="72"><input name="quantity" value="2"><button id="add">Add</button></form>`))
	b.engine.POST("/cart/add", func(c *gin.Context) {
		c.Data(http.StatusOK, "text/html", []byte(`<!doctype html><p id="added">added</p>`))
	})
	b.page("/products/ld", storefrontPage("LD Mug", `
<script type="application/ld+json">{"@context":"https://schema.org","@graph":[{"@type":"WebPage"},
 {"@type":"Product","name":"LD Mug","sku":"MUG-1","image":["https://cdn.example/mug.jpg"],"category":"Kitchen",
  "offers":{"@type":"Offer","price":"12.50","priceCurrency":"USD"}}]}</script>`))
	b.page("/collections/sale", storefrontPage("Sale", `<section data-nudge-collection="sale" data-nudge-name="Summer sale"></section>`))
	b.page("/products/layer", storefrontPage("Layer", `<div data-nudge-product="should-not-be-used"></div>
<script>nudge("product", {product_id: "layer-1", name: "Data Layer Lamp", price: 30});</script>`))
	ctx := newBrowser(t, 60*time.Second)
	loaded := chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
		_, err := chromedp.Poll[bool](`window.nudge && window.nudge.loaded === true`, chromedp.WithPollingTimeout(10*time.Second))(ctx, tg)
		return err
	})
	var cookies string
	require.NoError(t, chromedp.Do(ctx,
		chromedp.Navigate(b.srv.URL+"/products/shopify?variant=72"), loaded, chromedp.Sleep(500*time.Millisecond),
		chromedp.Click(chromedp.ID("add")), chromedp.WaitVisible(chromedp.ID("added")),
		chromedp.Navigate(b.srv.URL+"/products/ld"), loaded, chromedp.Sleep(500*time.Millisecond),
		chromedp.Navigate(b.srv.URL+"/collections/sale"), loaded, chromedp.Sleep(500*time.Millisecond),
		chromedp.Navigate(b.srv.URL+"/products/layer"), loaded, chromedp.Sleep(500*time.Millisecond),
		chromedp.Func(func(ctx context.Context, tg *chromedp.Target) (err error) {
			cookies, err = chromedp.Evaluate[string](`document.cookie`)(ctx, tg)
			return err
		}),
		chromedp.Navigate("about:blank"),
	))
	var anon string
	for _, c := range strings.Split(cookies, ";") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(c), "nudge_aid="); ok {
			anon = v
		}
	}
	require.NotEmpty(t, anon)
	recs := waitRecords(t, b.store, anon, func(r []behavior.Record) bool {
		n := 0
		for _, x := range r {
			if x.Kind == behavior.ProductViewed {
				n++
			}
		}
		return n >= 3 && hasAll(r, []behavior.Kind{behavior.CartUpdated, behavior.CollectionViewed})
	})
	t.Logf("%s", describe(recs))
	products := map[string]behavior.Item{}
	for _, r := range recs {
		switch r.Kind {
		case behavior.ProductViewed:
			products[r.Items[0].ProductID] = r.Items[0]
			if r.Items[0].ProductID == "7" {
				require.Equal(t, "EUR", r.Currency)
			}
		case behavior.CartUpdated:
			require.Equal(t, "added", r.Attrs[AttrAction])
			require.Equal(t, "72", r.Items[0].VariantID)
			require.Equal(t, 2, r.Items[0].Quantity)
			require.Equal(t, int64(2499), r.Items[0].Price)
		case behavior.CollectionViewed:
			require.Equal(t, "sale", r.Attrs[AttrListID])
		}
	}
	require.Equal(t, behavior.Item{ProductID: "7", VariantID: "72", SKU: "TEE-XL", Title: "Tee - XL", URL: b.srv.URL + "/products/shopify", Price: 2499, Quantity: 1, Category: "Shirts"}, products["7"])
	require.Equal(t, behavior.Item{ProductID: "MUG-1", SKU: "MUG-1", Title: "LD Mug", URL: b.srv.URL + "/products/ld", ImageURL: "https://cdn.example/mug.jpg", Price: 1250, Quantity: 1, Category: "Kitchen"}, products["MUG-1"])
	require.Equal(t, int64(3000), products["layer-1"].Price)
	require.NotContains(t, products, "should-not-be-used", "an explicit nudge('product') wins over markup")
}
