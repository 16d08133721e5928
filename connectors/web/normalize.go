package web

import (
	"encoding/json"
	"fmt"
	"math"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/nudge-email/nudge/behavior"
)

// timeInRange reports whether t is inside the span the store can order
// records in; anything outside is a client bug, not an event.
func timeInRange(t time.Time) bool {
	return t.After(time.Date(1970, 1, 2, 0, 0, 0, 0, time.UTC)) && t.Before(time.Date(2200, 1, 1, 0, 0, 0, 0, time.UTC))
}

// Source is the name of this connector in records, routes and config.
const Source = behavior.SourceWeb

// Attribute keys this connector sets on records.
const (
	AttrEvent      = behavior.AttrTopic // the Segment event name or call type
	AttrCallType   = "call"             // track | identify | page | screen | alias | group
	AttrAction     = "action"           // cart_updated: added | removed | viewed
	AttrTitle      = "title"            // page title
	AttrPath       = "path"
	AttrReferrer   = "referrer"
	AttrScreen     = "screen"     // screen calls: the screen name
	AttrPageName   = "name"       // page calls: the page name
	AttrProperties = "properties" // custom events: the event's properties
	AttrListID     = "list_id"
	AttrCategory   = "category"
	AttrGroupID    = "group_id"
	AttrNote       = "note" // what was repaired on the way in (bad timestamp …)
	AttrVerified   = "verified_by"
)

// specKind maps Segment's e-commerce spec event names (v2 and their v1
// aliases, lower-cased) to record kinds, and for carts the action.
func specKind(lower string) (kind behavior.Kind, action string, ok bool) {
	switch lower {
	case "product viewed", "viewed product":
		return behavior.ProductViewed, "", true
	case "product list viewed", "viewed product category", "product list filtered", "category viewed":
		return behavior.CollectionViewed, "", true
	case "products searched", "searched products":
		return behavior.Searched, "", true
	case "product added", "added product":
		return behavior.CartUpdated, "added", true
	case "product removed", "removed product":
		return behavior.CartUpdated, "removed", true
	case "cart viewed", "viewed cart":
		return behavior.CartUpdated, "viewed", true
	case "checkout started", "started order":
		return behavior.CheckoutStarted, "", true
	case "order completed", "completed order":
		return behavior.OrderPlaced, "", true
	case "order refunded":
		return behavior.OrderRefunded, "", true
	case "order cancelled", "order canceled":
		return behavior.OrderCancelled, "", true
	}
	return "", "", false
}

// KindFor returns the record kind a track event name maps to: an
// e-commerce spec event (case-insensitive) or "custom:<name>" as sent.
func KindFor(event string) behavior.Kind {
	name := strings.Join(strings.Fields(event), " ")
	if k, _, ok := specKind(strings.ToLower(name)); ok {
		return k
	}
	return behavior.Kind(behavior.CustomPrefix + name)
}

// normalizer turns calls into records. It is pure apart from reading the
// token secret, so it is safe for concurrent use.
type normalizer struct {
	storeID     string
	currency    string
	tokenSecret []byte
}

// record normalizes one call received at received.
func (n *normalizer) record(m Message, received time.Time) (behavior.Record, error) {
	r := behavior.Record{
		Source:      Source,
		Store:       n.storeID,
		ReceivedAt:  received,
		AnonymousID: string(m.AnonymousID),
		CustomerID:  string(m.UserID),
		Email:       behavior.NormalizeEmail(m.email()),
		Attrs:       map[string]any{AttrCallType: m.Type},
	}
	at, note := m.occurredAt(received)
	if !timeInRange(at) {
		return behavior.Record{}, fmt.Errorf("%w: timestamp %s is out of range", ErrInvalid, at.Format(time.RFC3339))
	}
	r.At = at
	if note != "" {
		r.Attrs[AttrNote] = note
	}
	if tok := m.nudgeToken(); tok != "" {
		email, err := VerifyIdentity(n.tokenSecret, tok, received)
		if err != nil {
			return behavior.Record{}, fmt.Errorf("%w: nudge_id: %v", ErrInvalid, err)
		}
		r.Email = email
		r.Attrs[AttrVerified] = "nudge_id"
	}
	r.Currency = n.currencyOf(m.Properties)
	n.context(&r, m.Context)

	switch m.Type {
	case TypeIdentify:
		r.Kind = behavior.CustomerUpdated
		r.Person = person(m.Traits, m.Context)
	case TypeAlias:
		r.Kind = behavior.CustomerUpdated
		// The previous id is usually the browser's anonymous id; some
		// apps alias from an email address.
		prev := string(m.PreviousID)
		if looksLikeEmail(prev) {
			if r.Email == "" {
				r.Email = behavior.NormalizeEmail(prev)
			}
		} else {
			r.AnonymousID = prev
		}
		r.Attrs["previous_id"] = prev
	case TypeGroup:
		r.Kind = behavior.CustomerUpdated
		r.Attrs[AttrGroupID] = string(m.GroupID)
		if len(m.Traits) > 0 {
			r.Attrs["group_traits"] = plain(m.Traits)
		}
	case TypePage, TypeScreen:
		r.Kind = behavior.PageViewed
		n.page(&r, m)
	case TypeTrack:
		n.track(&r, m)
	}
	if r.Person == nil && m.Type != TypeGroup {
		if p := person(obj(m.Context, "traits"), m.Context); p != nil && (p.FirstName != "" || p.LastName != "" || p.Phone != "") {
			r.Person = p
		}
	}
	if len(r.Identities()) == 0 {
		return behavior.Record{}, fmt.Errorf("%w: \"userId\" or \"anonymousId\" is required", ErrInvalid)
	}
	r.ID = n.id(m)
	return r, nil
}

// id derives the record id from the messageId, so a retried call (every
// Segment library retries with the same messageId) dedupes. A call
// without one gets an id from its content, so an identical resend dedupes
// too.
func (n *normalizer) id(m Message) string {
	if m.MessageID != "" {
		return behavior.DeriveID(Source, n.storeID, string(m.MessageID))
	}
	c := m
	c.WriteKey, c.SentAt = "", ""
	b, _ := json.Marshal(c) // maps of decoded JSON always marshal
	return behavior.DeriveID(Source, n.storeID, "content", string(b))
}

func (n *normalizer) currencyOf(props map[string]any) string {
	if c := strings.ToUpper(str(props, "currency")); len(c) == 3 {
		return c
	}
	return strings.ToUpper(n.currency)
}

// context copies what rules and insights use from the call's context.
// The IP address is deliberately never read.
func (n *normalizer) context(r *behavior.Record, ctx map[string]any) {
	page := obj(ctx, "page")
	if u := str(page, "url"); u != "" {
		r.URL = u
	}
	for attr, key := range map[string]string{AttrTitle: "title", AttrPath: "path", AttrReferrer: "referrer"} {
		if v := str(page, key); v != "" {
			r.Attrs[attr] = v
		}
	}
	if ua := str(ctx, "userAgent"); ua != "" {
		r.Attrs["user_agent"] = truncate(ua, 300)
	}
	if lib := obj(ctx, "library"); lib != nil {
		if name := str(lib, "name"); name != "" {
			r.Attrs["library"] = name
		}
	}
	if ref := str(obj(ctx, "campaign"), "name"); ref != "" {
		r.Attrs["campaign"] = ref
	}
	if sid := str(ctx, "sessionId"); sid != "" {
		r.SetRef(behavior.RefSessionID, sid)
	}
}

// person reads profile facts from identify traits, both in Segment's
// snake_case and analytics.js camelCase.
func person(traits, ctx map[string]any) *behavior.Person {
	p := behavior.Person{
		FirstName: str(traits, "firstName", "first_name"),
		LastName:  str(traits, "lastName", "last_name"),
		Phone:     str(traits, "phone"),
		Timezone:  str(ctx, "timezone"),
		Locale:    str(ctx, "locale"),
		Country:   str(obj(traits, "address"), "country"),
	}
	if p.FirstName == "" && p.LastName == "" {
		if name := str(traits, "name"); name != "" {
			first, last, _ := strings.Cut(name, " ")
			p.FirstName, p.LastName = first, strings.TrimSpace(last)
		}
	}
	if p == (behavior.Person{}) {
		return nil
	}
	return &p
}

func (n *normalizer) page(r *behavior.Record, m Message) {
	if u := str(m.Properties, "url"); u != "" {
		r.URL = u
	}
	if v := str(m.Properties, "title"); v != "" {
		r.Attrs[AttrTitle] = v
	}
	if v := str(m.Properties, "path"); v != "" {
		r.Attrs[AttrPath] = v
	}
	if v := str(m.Properties, "referrer"); v != "" {
		r.Attrs[AttrReferrer] = v
	}
	if m.Name != "" {
		key := AttrPageName
		if m.Type == TypeScreen {
			key = AttrScreen
		}
		r.Attrs[key] = m.Name
	} else if m.Type == TypeScreen {
		r.Attrs[AttrScreen] = ""
	}
	if m.Category != "" {
		r.Attrs[AttrCategory] = m.Category
	}
	for _, k := range []string{"seconds", "time_on_page", "timeOnPage"} {
		if s, ok := number(m.Properties[k]); ok && s > 0 {
			// Time on page beyond a day is a tab left open, not reading.
			r.Seconds = math.Min(math.Round(s*10)/10, 86400)
			break
		}
	}
	r.Attrs[AttrEvent] = m.Type
}

func (n *normalizer) track(r *behavior.Record, m Message) {
	name := strings.Join(strings.Fields(m.Event), " ")
	lower := strings.ToLower(name)
	r.Kind = KindFor(name)
	r.Attrs[AttrEvent] = name
	p := m.Properties
	switch r.Kind {
	case behavior.ProductViewed:
		r.Items = itemsOf(p, false, r.Currency)
		if r.URL == "" {
			r.URL = str(p, "url")
		}
	case behavior.CollectionViewed:
		r.Items = itemsOf(p, true, r.Currency)
		if v := str(p, "list_id"); v != "" {
			r.Attrs[AttrListID] = v
		}
		if v := str(p, "category"); v != "" {
			r.Attrs[AttrCategory] = v
		}
	case behavior.Searched:
		r.Query = queryOf(p["query"])
	case behavior.CartUpdated:
		_, action, _ := specKind(lower)
		r.Attrs[AttrAction] = action
		r.Items = itemsOf(p, lower == "cart viewed" || lower == "viewed cart", r.Currency)
		r.SetRef(behavior.RefCartToken, str(p, "cart_id"))
		r.Value = firstMoney(p, r.Currency, "value", "total")
		if r.Value == 0 && action == "viewed" {
			r.Value = behavior.ItemValue(r.Items)
		}
	case behavior.CheckoutStarted:
		r.Items = itemsOf(p, true, r.Currency)
		r.SetRef(behavior.RefCheckoutToken, str(p, "checkout_id", "checkout_token"))
		r.SetRef(behavior.RefOrderID, str(p, "order_id"))
		r.SetRef(behavior.RefCartToken, str(p, "cart_id"))
		r.Value = firstMoney(p, r.Currency, "value", "revenue", "total")
	case behavior.OrderPlaced, behavior.OrderRefunded, behavior.OrderCancelled:
		r.Items = itemsOf(p, true, r.Currency)
		r.SetRef(behavior.RefOrderID, str(p, "order_id"))
		r.SetRef(behavior.RefCheckoutToken, str(p, "checkout_id", "checkout_token"))
		// revenue excludes shipping and tax in Segment's spec, which is
		// what customer value models want; total is the fallback.
		r.Value = firstMoney(p, r.Currency, "revenue", "total", "value", "subtotal")
	default:
		if len(p) > 0 {
			r.Attrs[AttrProperties] = plain(p)
		}
	}
	if r.Value == 0 && len(r.Items) > 0 && (r.Kind == behavior.OrderPlaced || r.Kind == behavior.CheckoutStarted) {
		r.Value = behavior.ItemValue(r.Items)
	}
	if r.Kind == behavior.Searched && r.Query == "" {
		r.Query = str(p, "q", "search")
	}
}

// itemsOf reads the products of a call: a products array (lists, carts,
// orders) or the product described by the properties themselves.
func itemsOf(p map[string]any, list bool, currency string) []behavior.Item {
	if arr, ok := p["products"].([]any); ok {
		items := make([]behavior.Item, 0, len(arr))
		for _, e := range arr {
			if o, ok := e.(map[string]any); ok {
				if it, ok := item(o, currency); ok {
					items = append(items, it)
				}
			}
		}
		return items
	}
	if list {
		return nil
	}
	if it, ok := item(p, currency); ok {
		return []behavior.Item{it}
	}
	return nil
}

func item(o map[string]any, currency string) (behavior.Item, bool) {
	if c := strings.ToUpper(str(o, "currency")); len(c) == 3 {
		currency = c
	}
	it := behavior.Item{
		ProductID: str(o, "product_id", "productId", "id"),
		VariantID: str(o, "variant_id", "variantId"),
		SKU:       str(o, "sku"),
		Title:     str(o, "name", "title"),
		URL:       str(o, "url"),
		ImageURL:  str(o, "image_url", "imageUrl", "image"),
		Category:  str(o, "category"),
		Price:     money(o["price"], currency),
	}
	if q, ok := number(o["quantity"]); ok && q > 0 {
		it.Quantity = int(math.Min(q, 1e6))
	} else {
		it.Quantity = 1
	}
	if it.ProductID == "" && it.SKU == "" && it.Title == "" && it.VariantID == "" {
		return behavior.Item{}, false
	}
	if it.ProductID == "" {
		it.ProductID = it.SKU
	}
	if len(it.ProductID) > maxIDLen || strings.IndexByte(it.ProductID, 0) >= 0 {
		return behavior.Item{}, false
	}
	return it, true
}

// money reads a Segment amount in major units (a JSON number, or a string
// as older examples send) into minor units without float arithmetic:
// json.Number keeps the decimal text as sent.
func money(v any, currency string) int64 {
	switch x := v.(type) {
	case json.Number:
		if n, err := behavior.ParseMoney(x.String(), currency); err == nil {
			return n
		}
		// Exponent notation (1e2) is the only number ParseMoney refuses.
		if f, err := x.Float64(); err == nil && !math.IsInf(f, 0) && math.Abs(f) < 1e15 {
			return behavior.MoneyFromFloat(f, currency)
		}
	case string:
		return behavior.ParseMoneyOrZero(strings.TrimPrefix(strings.TrimSpace(x), "$"), currency)
	}
	return 0
}

func firstMoney(p map[string]any, currency string, keys ...string) int64 {
	for _, k := range keys {
		if v := money(p[k], currency); v != 0 {
			return v
		}
	}
	return 0
}

func number(v any) (float64, bool) {
	switch x := v.(type) {
	case json.Number:
		f, err := x.Float64()
		return f, err == nil && !math.IsNaN(f) && !math.IsInf(f, 0)
	case string:
		f, err := strconv.ParseFloat(strings.TrimSpace(x), 64)
		return f, err == nil && !math.IsNaN(f) && !math.IsInf(f, 0)
	}
	return 0, false
}

// queryOf reads a search query, which the spec allows to be a string or
// an object (structured search); objects are kept as compact JSON.
func queryOf(v any) string {
	switch x := v.(type) {
	case string:
		return strings.TrimSpace(x)
	case json.Number:
		return x.String()
	case map[string]any, []any:
		b, _ := json.Marshal(plain(x))
		return string(b)
	}
	return ""
}

// plain converts decoded JSON to values that survive the store's JSON
// round trip unchanged and that expressions can compare: json.Number
// becomes an int64 when integral, else a float64 (attributes only; money
// never goes through here).
func plain(v any) any {
	switch x := v.(type) {
	case json.Number:
		if i, err := x.Int64(); err == nil {
			return i
		}
		f, _ := x.Float64()
		return f
	case map[string]any:
		out := make(map[string]any, len(x))
		keys := make([]string, 0, len(x))
		for k := range x {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			if strings.EqualFold(k, "ip") {
				continue // never store raw IP addresses, wherever they appear
			}
			out[k] = plain(x[k])
		}
		return out
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			out[i] = plain(e)
		}
		return out
	}
	return v
}
