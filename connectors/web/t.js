/* nudge storefront script: docs/tracking.md. No dependencies, no build step. */
(function (w, d) {
  'use strict';
  if (w.nudge && w.nudge.loaded) return;
  var C = /*NUDGE_CONFIG*/{};
  var N = w.navigator, L = w.location;
  var S = d.currentScript || d.querySelector('script[src*="/t.js"]');
  function attr(k) { return S ? S.getAttribute('data-' + k) : null; }
  var KEY = attr('key') || '';
  var EP = attr('endpoint') || (S && S.src ? new URL(S.src, L.href).origin : C.endpoint || '');
  EP = String(EP).replace(/\/+$/, '');
  var NEED = !!C.requireConsent || attr('require-consent') === 'true';
  // Global Privacy Control: the visitor said no; send and store nothing.
  var OFF = !!N.globalPrivacyControl || !KEY || !EP;
  var consent = ls('nudge_consent'); // '1' granted, '0' refused, null unknown
  var queue = [], held = [], timer = 0, aid = '', lastEmail = '', productSent = false;

  function ls(k, v) {
    try {
      if (v === undefined) return w.localStorage.getItem(k);
      if (v === null) w.localStorage.removeItem(k); else w.localStorage.setItem(k, v);
    } catch (e) {}
    return null;
  }
  function cookie(k, v, days) {
    if (v === undefined) {
      var m = d.cookie.match(new RegExp('(?:^|; )' + k + '=([^;]*)'));
      return m ? decodeURIComponent(m[1]) : '';
    }
    d.cookie = k + '=' + encodeURIComponent(v) + '; path=/; max-age=' + days * 86400 + '; SameSite=Lax' + (L.protocol === 'https:' ? '; Secure' : '');
  }
  function uuid() {
    var c = w.crypto;
    if (c && c.randomUUID) return c.randomUUID();
    var b = new Uint8Array(16), s = '';
    c.getRandomValues(b);
    for (var i = 0; i < 16; i++) s += (b[i] + 256).toString(16).slice(1);
    return s;
  }
  // First-party anonymous id: cookie, with localStorage as a backup for
  // browsers that cap script-set cookies. Created only once allowed.
  function anonId() {
    if (!aid) aid = cookie('nudge_aid') || ls('nudge_aid') || uuid();
    cookie('nudge_aid', aid, 365);
    ls('nudge_aid', aid);
    return aid;
  }
  function allowed() { return consent === '1' || (!NEED && consent !== '0'); }

  function page() {
    return { url: L.href, path: L.pathname, search: L.search, title: d.title, referrer: d.referrer };
  }
  function msg(type, extra) {
    var c = { page: page(), userAgent: N.userAgent, locale: N.language, library: { name: 'nudge.js', version: '1' } };
    try { c.timezone = Intl.DateTimeFormat().resolvedOptions().timeZone; } catch (e) {}
    var m = { type: type, messageId: uuid(), timestamp: new Date().toISOString(), context: c };
    for (var k in extra) m[k] = extra[k];
    return m;
  }
  function push(m) {
    if (OFF || consent === '0') return;
    // Consent mode: keep calls in memory only (no cookie, nothing sent)
    // until the page grants consent; they are lost if it never does.
    if (!allowed()) { held.push(m); return; }
    queue.push(m);
    if (!timer) timer = setTimeout(flush, 300);
  }
  function flush() {
    clearTimeout(timer);
    timer = 0;
    if (!queue.length || !allowed()) return;
    var id = anonId();
    for (var i = 0; i < queue.length; i++) {
      queue[i].anonymousId = id;
      if (consent === '1') queue[i].context.consent = { categoryPreferences: { analytics: true, marketing: true } };
    }
    // text/plain keeps the beacon a CORS "simple" request (no preflight);
    // beacons cannot carry headers, so the write key rides in the body.
    var body = JSON.stringify({ batch: queue, sentAt: new Date().toISOString(), writeKey: KEY });
    var url = EP + '/v1/batch';
    queue = [];
    try { if (N.sendBeacon && N.sendBeacon(url, new Blob([body], { type: 'text/plain' }))) return; } catch (e) {}
    try { w.fetch(url, { method: 'POST', body: body, keepalive: true, credentials: 'omit', headers: { 'Content-Type': 'text/plain' } }); } catch (e) {}
  }

  function track(event, props) { push(msg('track', { event: event, properties: props || {} })); }
  function identify(x, traits) {
    var t = {}, k;
    if (x && typeof x === 'object') traits = x; else if (typeof x === 'string') t.email = x;
    for (k in traits || {}) t[k] = traits[k];
    if (t.email !== undefined) {
      t.email = String(t.email).trim().toLowerCase();
      if (!/^[^@\s]+@[^@\s]+\.[^@\s]+$/.test(t.email) || t.email === lastEmail) return;
      lastEmail = t.email;
    }
    for (k in t) return push(msg('identify', { traits: t }));
  }
  function setConsent(v) {
    consent = v ? '1' : '0';
    ls('nudge_consent', consent);
    if (v) {
      while (held.length) push(held.shift());
      flush();
    } else {
      held = []; queue = [];
      cookie('nudge_aid', '', 0);
      ls('nudge_aid', null);
      aid = '';
    }
  }

  // Time on page counts only while the page is visible, and is sent once,
  // with the page view, when the visitor leaves or hides the tab.
  var view, visibleMs, since, pageSent;
  function startView() {
    view = { id: uuid(), at: new Date().toISOString(), props: page() };
    visibleMs = 0; pageSent = false;
    since = d.visibilityState === 'hidden' ? 0 : Date.now();
  }
  function leave() {
    if (since) { visibleMs += Date.now() - since; since = 0; }
    if (!pageSent) {
      pageSent = true;
      var p = view.props;
      p.seconds = Math.round(visibleMs / 100) / 10;
      var m = msg('page', { properties: p });
      m.messageId = view.id;
      m.timestamp = view.at;
      m.context.page = page();
      push(m);
    }
    flush();
  }
  d.addEventListener('visibilitychange', function () {
    if (d.visibilityState === 'hidden') leave(); else if (!since) since = Date.now();
  });
  w.addEventListener('pagehide', leave);
  w.addEventListener('pageshow', function (e) { if (e.persisted) startView(); });

  // Product detection: explicit nudge('product', …), then
  // [data-nudge-product] elements, Shopify's page meta, then JSON-LD.
  function cents(c) {
    c = String(Math.round(c));
    while (c.length < 3) c = '0' + c;
    return c.slice(0, -2) + '.' + c.slice(-2);
  }
  function fromAttrs(el) {
    function g(k) { return el.getAttribute('data-nudge-' + k) || undefined; }
    return {
      product_id: el.getAttribute('data-nudge-product') || g('id'), variant_id: g('variant'), sku: g('sku'),
      name: g('name') || g('title'), price: g('price'), currency: g('currency'), category: g('category'),
      url: g('url') || L.href.split('?')[0], image_url: g('image')
    };
  }
  function meta() { return w.ShopifyAnalytics && w.ShopifyAnalytics.meta; }
  function fromShopify(m) {
    var p = m.product, vs = p.variants || [], want = new URLSearchParams(L.search).get('variant'), v = vs[0] || {};
    for (var i = 0; i < vs.length; i++) if (String(vs[i].id) === want) v = vs[i];
    return {
      product_id: String(p.id), variant_id: v.id ? String(v.id) : undefined, sku: v.sku || undefined,
      name: v.name || d.title, price: v.price != null ? cents(v.price) : undefined, category: p.type || undefined,
      brand: p.vendor, currency: m.currency, url: L.href.split('?')[0]
    };
  }
  function fromLD() {
    var s = d.querySelectorAll('script[type="application/ld+json"]');
    for (var i = 0; i < s.length; i++) {
      try {
        var j = JSON.parse(s[i].textContent), all = [].concat(j['@graph'] || j);
        for (var k = 0; k < all.length; k++) {
          var p = all[k];
          if (!p || [].concat(p['@type']).indexOf('Product') < 0) continue;
          var o = [].concat(p.offers || {})[0] || {}, img = [].concat(p.image || '')[0];
          return {
            product_id: String(p.productID || p.sku || p.url || L.pathname), sku: p.sku, name: p.name,
            price: o.price != null ? String(o.price) : undefined, currency: o.priceCurrency, category: p.category,
            url: p.url || L.href.split('?')[0], image_url: typeof img === 'object' ? img.url : img || undefined
          };
        }
      } catch (e) {}
    }
  }
  function current() {
    var el = d.querySelector(attr('product-selector') || '[data-nudge-product]'), m = meta();
    if (el) return fromAttrs(el);
    if (m && m.product) return fromShopify(m);
    return fromLD();
  }
  function searchQuery() {
    var q = new URLSearchParams(L.search);
    return q.get('s') || (/search/i.test(L.pathname) ? q.get('q') || q.get('query') || q.get('search') : '') || '';
  }
  function detect() {
    if (!productSent) {
      var p = current();
      if (p) track('Product Viewed', p);
    }
    var m = meta(), col = d.querySelector('[data-nudge-collection]');
    if (col) track('Product List Viewed', { list_id: col.getAttribute('data-nudge-collection'), category: col.getAttribute('data-nudge-name') || d.title });
    else if (m && m.page && m.page.pageType === 'collection') track('Product List Viewed', { list_id: String(m.page.resourceId || L.pathname), category: d.title });
    var q = searchQuery().trim();
    if (q) track('Products Searched', { query: q });
  }

  function formEmail(f) {
    try {
      var e = f.querySelector('input[type=email],input[name*=email i]');
      return e && e.value;
    } catch (x) {}
  }
  function addToCart(f) {
    var fd = new FormData(f), p = current() || {}, props = {}, k;
    for (k in p) props[k] = p[k];
    props.variant_id = fd.get('id') || fd.get('variation_id') || props.variant_id;
    props.product_id = fd.get('add-to-cart') || fd.get('product_id') || props.product_id;
    props.quantity = Number(fd.get('quantity')) || 1;
    track('Product Added', props);
  }
  d.addEventListener('submit', function (e) {
    var f = e.target;
    if (!f || f.tagName !== 'FORM') return;
    var action = f.getAttribute('action') || '';
    if (/\/cart\/add/.test(action) || f.querySelector('[name="add-to-cart"]')) addToCart(f);
    var s = f.querySelector('input[type=search],input[name=q],input[name=s]');
    if (s || f.getAttribute('role') === 'search') {
      // A search that navigates is counted on the results page from its
      // URL; one handled in place (default prevented) is counted here.
      setTimeout(function () { if (e.defaultPrevented && s && s.value.trim()) track('Products Searched', { query: s.value.trim() }); }, 0);
    }
    var em = formEmail(f);
    if (em) identify(em);
    flush();
  }, true);
  d.addEventListener('change', function (e) {
    var t = e.target;
    if (t && t.tagName === 'INPUT' && (t.type === 'email' || /email/i.test(t.name || ''))) identify(t.value);
  }, true);
  d.addEventListener('click', function (e) {
    var a = e.target && e.target.closest && e.target.closest('.add_to_cart_button[data-product_id]');
    if (a) track('Product Added', { product_id: a.getAttribute('data-product_id'), sku: a.getAttribute('data-product_sku') || undefined, quantity: Number(a.getAttribute('data-quantity')) || 1 });
  }, true);

  function api(cmd, a, b) {
    if (OFF) return;
    switch (cmd) {
      case 'identify': identify(a, b); break;
      case 'product': productSent = true; track('Product Viewed', a); break;
      case 'collection': track('Product List Viewed', a); break;
      case 'search': track('Products Searched', typeof a === 'string' ? { query: a } : a); break;
      case 'cart': track('Product Added', a); break;
      case 'track': track(a, b); break;
      case 'consent': setConsent(a); break;
      case 'flush': flush(); break;
    }
  }
  var pending = (w.nudge && w.nudge.q) || [];
  w.nudge = function () { api.apply(null, arguments); };
  w.nudge.loaded = true;

  startView();
  // A signed nudge_id link parameter (from our emails) identifies the
  // reader once the server verifies it; drop it from the address bar so it
  // is not shared or bookmarked.
  var qs = new URLSearchParams(L.search), tok = qs.get('nudge_id');
  if (tok) {
    qs.delete('nudge_id');
    var rest = qs.toString();
    try { history.replaceState(history.state, '', L.pathname + (rest ? '?' + rest : '') + L.hash); } catch (e) {}
    view.props = page();
    push(msg('identify', { traits: { nudge_id: tok } }));
  }
  for (var i = 0; i < pending.length; i++) api.apply(null, pending[i]);
  if (d.readyState === 'loading') d.addEventListener('DOMContentLoaded', detect); else detect();
})(window, document);
