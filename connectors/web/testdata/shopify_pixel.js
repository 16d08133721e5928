// nudge — Shopify Custom Pixel (Settings → Customer events → Add custom pixel).
const NUDGE_URL = "https://nudge.example.com";  // your nudge public_url
const WRITE_KEY = "your-write-key";             // tracking.write_key
// Orders and checkouts already reach nudge through the Shopify webhooks.
// Keep false to send the pixel's checkout events only as identities plus
// custom events; set true for a store that sends nudge no webhooks.
const FORWARD_CHECKOUTS = false;

let privacy = (init && init.customerPrivacy) || {};
// Consent can change without a page load (the cookie banner).
const cp = typeof customerPrivacy !== "undefined" ? customerPrivacy
  : typeof api !== "undefined" ? api.customerPrivacy : null;
if (cp && cp.subscribe) cp.subscribe("visitorConsentCollected", (e) => { privacy = e.customerPrivacy || privacy; });

function item(v, quantity) {
  if (!v) return null;
  const p = v.product || {};
  return {
    product_id: p.id ? String(p.id) : undefined,
    variant_id: v.id ? String(v.id) : undefined,
    sku: v.sku || undefined,
    name: p.title || v.title,
    price: v.price ? v.price.amount : undefined,
    currency: v.price ? v.price.currencyCode : undefined,
    category: p.type || undefined,
    url: p.url || undefined,
    image_url: v.image ? v.image.src : undefined,
    quantity: quantity || 1,
  };
}

function send(event, type, name, properties, email) {
  const doc = event.context.document;
  const msg = {
    type: type,
    messageId: event.id,
    anonymousId: event.clientId,
    timestamp: event.timestamp,
    properties: properties || {},
    context: {
      page: { url: doc.location.href, path: doc.location.pathname, search: doc.location.search, title: doc.title, referrer: doc.referrer },
      userAgent: event.context.navigator.userAgent,
      library: { name: "nudge-shopify-pixel", version: "1" },
      consent: { categoryPreferences: {
        analytics: privacy.analyticsProcessingAllowed !== false,
        marketing: privacy.marketingAllowed !== false,
      } },
    },
  };
  if (type === "track") msg.event = name; else if (name) msg.name = name;
  if (email) msg.context.traits = { email: email };
  fetch(NUDGE_URL + "/v1/batch", {
    method: "POST",
    keepalive: true,
    credentials: "omit",
    headers: { "Content-Type": "text/plain" },  // a CORS "simple" request: no preflight
    body: JSON.stringify({ batch: [msg], writeKey: WRITE_KEY, sentAt: new Date().toISOString() }),
  });
}

function checkoutProps(c) {
  return {
    checkout_id: c.token,
    order_id: c.order && c.order.id ? String(c.order.id) : undefined,
    value: c.totalPrice ? c.totalPrice.amount : undefined,
    revenue: c.subtotalPrice ? c.subtotalPrice.amount : undefined,
    total: c.totalPrice ? c.totalPrice.amount : undefined,
    currency: c.currencyCode,
    products: (c.lineItems || []).map((li) => item(li.variant, li.quantity)).filter(Boolean),
  };
}

analytics.subscribe("page_viewed", (e) => send(e, "page", e.context.document.title, {}));
analytics.subscribe("product_viewed", (e) => send(e, "track", "Product Viewed", item(e.data.productVariant)));
analytics.subscribe("collection_viewed", (e) => {
  const c = e.data.collection;
  send(e, "track", "Product List Viewed", {
    list_id: String(c.id), category: c.title,
    products: (c.productVariants || []).slice(0, 20).map((v) => item(v)).filter(Boolean),
  });
});
analytics.subscribe("search_submitted", (e) => send(e, "track", "Products Searched", { query: e.data.searchResult.query }));
analytics.subscribe("product_added_to_cart", (e) => {
  const line = e.data.cartLine;
  if (line) send(e, "track", "Product Added", item(line.merchandise, line.quantity));
});
analytics.subscribe("checkout_started", (e) => {
  const c = e.data.checkout;
  send(e, "track", FORWARD_CHECKOUTS ? "Checkout Started" : "Pixel Checkout Started", checkoutProps(c), c.email);
});
analytics.subscribe("checkout_completed", (e) => {
  const c = e.data.checkout;
  send(e, "track", FORWARD_CHECKOUTS ? "Order Completed" : "Pixel Checkout Completed", checkoutProps(c), c.email);
});
