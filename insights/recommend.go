package insights

import (
	"math"
	"slices"
	"sort"
	"sync"
	"time"

	"github.com/nudge-email/nudge/behavior"
)

// RecommenderConfig tunes the item-to-item model. Zero fields take the
// defaults of DefaultRecommenderConfig.
type RecommenderConfig struct {
	// Weights is the signal strength of each record kind; kinds absent
	// from it are ignored.
	Weights map[behavior.Kind]float64
	// HalfLife is how fast co-occurrences, popularity and a profile's own
	// history lose weight with age.
	HalfLife time.Duration
	// HistoryHalfLife is how fast a profile's own interactions lose weight
	// when its list is computed.
	HistoryHalfLife time.Duration
	// Window is how far apart two records of one profile may be to
	// co-occur: a viewing session, a cart built over days, repeat orders.
	Window time.Duration
	// CrossWeight scales co-occurrences between different records of a
	// profile relative to items of the same order or cart (0 < w <= 1).
	CrossWeight float64
	// Neighbors is how many most similar products of each history item
	// take part in a list; the long tail of weak co-occurrences is noise.
	Neighbors int
	// MaxContext bounds the distinct recent items kept per profile as the
	// other side of new co-occurrences (and the cost of one Add).
	MaxContext int
	// PopularityExponent β divides a co-occurrence by the candidate's
	// popularity to the power β, so best-sellers that co-occur with
	// everything do not top every list (β = 0.5 with the symmetric source
	// term is cosine similarity).
	PopularityExponent float64
}

// DefaultRecommenderConfig returns the defaults: views 1, cart adds 2,
// checkouts 2, orders 3; a 90-day half-life for the model and 180 days
// for a profile's history; a 365-day window with cross-record pairs at
// 0.3; 20 neighbours; 50 context items; β = 0.5. The Online Retail
// evaluation in bench/insights chose these (bench/README.md, Insights).
func DefaultRecommenderConfig() RecommenderConfig {
	return RecommenderConfig{
		Weights: map[behavior.Kind]float64{
			behavior.ProductViewed:   1,
			behavior.CartUpdated:     2,
			behavior.CheckoutStarted: 2,
			behavior.OrderPlaced:     3,
		},
		HalfLife:           90 * 24 * time.Hour,
		HistoryHalfLife:    180 * 24 * time.Hour,
		Window:             365 * 24 * time.Hour,
		CrossWeight:        0.3,
		Neighbors:          20,
		MaxContext:         50,
		PopularityExponent: 0.5,
	}
}

func (c RecommenderConfig) withDefaults() RecommenderConfig {
	d := DefaultRecommenderConfig()
	if c.Weights == nil {
		c.Weights = d.Weights
	}
	if c.HalfLife <= 0 {
		c.HalfLife = d.HalfLife
	}
	if c.HistoryHalfLife <= 0 {
		c.HistoryHalfLife = d.HistoryHalfLife
	}
	if c.CrossWeight <= 0 || c.CrossWeight > 1 {
		c.CrossWeight = d.CrossWeight
	}
	if c.Neighbors <= 0 {
		c.Neighbors = d.Neighbors
	}
	if c.Window < 0 {
		c.Window = 0
	} else if c.Window == 0 {
		c.Window = d.Window
	}
	if c.MaxContext <= 0 {
		c.MaxContext = d.MaxContext
	}
	if c.PopularityExponent < 0 {
		c.PopularityExponent = d.PopularityExponent
	}
	return c
}

// contextItem is one of a profile's recent items.
type contextItem struct {
	item   int32
	at     time.Time
	weight float64
}

// Recommender is an item-to-item co-occurrence model, updated one record
// at a time. It is safe for concurrent use.
//
// Time decay uses a moving origin: every addition is stored multiplied by
// 2^((at - origin)/halfLife) instead of decaying all stored values as time
// passes. All values then share one scale factor, which cancels in every
// ratio and ranking, so nothing needs to be rewritten as time goes by.
type Recommender struct {
	cfg    RecommenderConfig
	mu     sync.RWMutex
	origin time.Time
	ids    map[string]int32
	names  []string
	pop    []float64           // per item: Σ weight × scale
	adj    []map[int32]float64 // symmetric co-occurrence, same scale
	// recent holds the recent items of profiles observed since the model
	// was built (a refit keeps only the profile it is reading; see
	// seedContext).
	recent map[string][]contextItem
	// seen holds the ids of records added by Add, so a replayed record
	// counts once; a refit's own records are not kept (learn).
	seen map[string]struct{}

	// cache holds neighbour lists computed since the last Add; readers
	// share it under cacheMu while holding mu for reading.
	cacheMu sync.Mutex
	cache   map[int32][]neighbor
}

// NewRecommender returns an empty model.
func NewRecommender(cfg RecommenderConfig) *Recommender {
	return &Recommender{
		cfg:    cfg.withDefaults(),
		ids:    map[string]int32{},
		recent: map[string][]contextItem{},
		seen:   map[string]struct{}{},
	}
}

// scale returns the moving-origin factor for an event at t, setting the
// origin on first use.
func (m *Recommender) scale(t time.Time) float64 {
	if m.origin.IsZero() {
		m.origin = t
	}
	return math.Exp2(t.Sub(m.origin).Hours() / m.cfg.HalfLife.Hours())
}

func (m *Recommender) intern(id string) int32 {
	if i, ok := m.ids[id]; ok {
		return i
	}
	i := int32(len(m.names))
	m.ids[id] = i
	m.names = append(m.names, id)
	m.pop = append(m.pop, 0)
	m.adj = append(m.adj, map[int32]float64{})
	return i
}

func (m *Recommender) addPair(i, j int32, w float64) {
	if i == j {
		return
	}
	m.adj[i][j] += w
	m.adj[j][i] += w
}

// Add learns from one record of a profile: its items become more popular
// and co-occur with each other and with the profile's other items inside
// the window. Records of kinds without a weight, without products or
// already added are ignored; it reports whether the record was used.
func (m *Recommender) Add(r behavior.Record, profileID string) bool {
	return m.add(r, profileID, true)
}

// learn is Add for a refit, which reads every record once: it does not
// remember the record's id, so the model does not hold an id per record
// of the history (1M ids took ~60 MB).
func (m *Recommender) learn(r behavior.Record, profileID string) bool {
	return m.add(r, profileID, false)
}

// maxBasket bounds the products of one record the model learns from.
// Pairs grow with the square of a basket: a 10,000-line checkout took 5 GB
// and a minute of CPU. 200 products (19,900 pairs) keep what wholesale
// orders teach (UCI Online Retail's precision@10 falls below 0.10 at 50);
// tracking calls, whose write key is public and whose baskets are a
// shopper's cart, are held to maxWebBasket.
const (
	maxBasket    = 200
	maxWebBasket = 20
)

// basket is the products of a record the model learns from: its
// distinct product ids (sorted), at most maxBasket of them (maxWebBasket
// for tracking calls).
func basket(r behavior.Record) []string {
	limit := maxBasket
	if r.Source == behavior.SourceWeb {
		limit = maxWebBasket
	}
	products := behavior.ProductIDs(r.Items)
	return products[:min(len(products), limit)]
}

func (m *Recommender) add(r behavior.Record, profileID string, remember bool) bool {
	w := m.cfg.Weights[r.Kind]
	products := basket(r)
	if w <= 0 || len(products) == 0 {
		return false
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if r.ID != "" && remember {
		if _, dup := m.seen[r.ID]; dup {
			return false
		}
		m.seen[r.ID] = struct{}{}
	}
	m.cache = nil
	s := m.scale(r.At)
	items := make([]int32, len(products))
	in := map[int32]bool{}
	for k, p := range products {
		items[k] = m.intern(p)
		in[items[k]] = true
		m.pop[items[k]] += w * s
	}
	// A pair is counted once per basket, shared out by 1/√n so that a
	// wholesale order of 300 lines does not outweigh 300 small ones; and
	// a pair the profile has already bought together recently is not
	// counted again, so the model approximates "customers who bought X
	// also bought Y" rather than one customer's standing order.
	bw := w * s * basketNorm(len(items))
	known := map[int32]bool{}
	for _, c := range m.recent[profileID] {
		known[c.item] = true
	}
	for a := range items {
		for b := a + 1; b < len(items); b++ {
			if known[items[a]] && known[items[b]] {
				continue
			}
			m.addPair(items[a], items[b], bw)
		}
	}
	if profileID == "" {
		return true
	}
	ctx := m.recent[profileID]
	eligible := 0
	for _, c := range ctx {
		if !in[c.item] && absDuration(r.At.Sub(c.at)) <= m.cfg.Window {
			eligible++
		}
	}
	cn := basketNorm(len(items)+eligible) * m.cfg.CrossWeight
	for _, c := range ctx {
		if in[c.item] || absDuration(r.At.Sub(c.at)) > m.cfg.Window {
			continue
		}
		// A pair is as strong as its weaker signal: a view next to an
		// order says no more than two views.
		pw := math.Min(w, c.weight) * s * cn
		for _, it := range items {
			m.addPair(it, c.item, pw)
		}
	}
	m.recent[profileID] = mergeContext(ctx, items, r.At, w, m.cfg.MaxContext)
	return true
}

// usable reports whether Add would learn from a record of this kind.
func (m *Recommender) usable(r behavior.Record) bool {
	return m.cfg.Weights[r.Kind] > 0 && len(r.Items) > 0
}

// hasContext reports whether the model holds the profile's recent items.
func (m *Recommender) hasContext(profileID string) bool {
	m.mu.RLock()
	defer m.mu.RUnlock()
	_, ok := m.recent[profileID]
	return ok
}

// dropContext forgets the profile's recent items. A refit reads one
// profile's records at a time, so it keeps the context of that profile
// only, not of every profile in the store.
func (m *Recommender) dropContext(profileID string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.recent, profileID)
}

// seedContext rebuilds a profile's recent items from records the model
// has already learned (in time order), exactly as adding them did, without
// counting them again. It does nothing when the profile has a context:
// two concurrent observations of one profile seed it once.
func (m *Recommender) seedContext(profileID string, learned []behavior.Record) {
	if profileID == "" {
		return
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, ok := m.recent[profileID]; ok {
		return
	}
	var ctx []contextItem
	for _, r := range learned {
		w := m.cfg.Weights[r.Kind]
		products := basket(r)
		if w <= 0 || len(products) == 0 {
			continue
		}
		items := make([]int32, len(products))
		for k, p := range products {
			items[k] = m.intern(p)
		}
		ctx = mergeContext(ctx, items, r.At, w, m.cfg.MaxContext)
	}
	m.recent[profileID] = ctx
}

// mergeContext puts items at the front of a profile's context, replacing
// older entries of the same items, keeping the newest max entries.
func mergeContext(ctx []contextItem, items []int32, at time.Time, w float64, max int) []contextItem {
	out := make([]contextItem, 0, min(len(ctx)+len(items), max))
	fresh := map[int32]bool{}
	for _, it := range items {
		fresh[it] = true
		out = append(out, contextItem{item: it, at: at, weight: w})
	}
	for _, c := range ctx {
		if !fresh[c.item] {
			out = append(out, c)
		}
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].at.After(out[j].at) })
	if len(out) > max {
		out = out[:max]
	}
	return out
}

// basketNorm shares a basket's weight among its n items.
func basketNorm(n int) float64 { return 1 / math.Sqrt(float64(max(n, 1))) }

func absDuration(d time.Duration) time.Duration {
	if d < 0 {
		return -d
	}
	return d
}

// Interaction is one thing a profile did with a product, the input of
// Recommend.
type Interaction struct {
	ProductID string
	Kind      behavior.Kind
	At        time.Time
}

// Scored is a recommended product with its score; Trending marks products
// that filled the list from decayed popularity rather than from the
// profile's own history.
type Scored struct {
	ProductID string  `json:"product_id"`
	Score     float64 `json:"score"`
	Trending  bool    `json:"trending,omitempty"`
}

// Recommend ranks products for someone with this history at now:
//
//	score(j) = Σ_i w(kind_i) · 2^(-(now-at_i)/historyHalfLife) · sim(i,j)
//	sim(i,j) = C(i,j) / (P(i)^β P(j)^β), over i's top Neighbors only
//
// where C is the decayed co-occurrence and P the decayed popularity. Items
// for which skip returns true (already bought and not replenishable, out
// of stock …) are never returned. Fewer than n personal candidates are
// topped up with trending products, which is all a new visitor gets.
func (m *Recommender) Recommend(history []Interaction, n int, now time.Time, skip func(productID string) bool) []Scored {
	if n <= 0 {
		return nil
	}
	if skip == nil {
		skip = func(string) bool { return false }
	}
	m.mu.RLock()
	defer m.mu.RUnlock()
	hist := map[int32]float64{}
	for _, h := range history {
		i, ok := m.ids[h.ProductID]
		if !ok {
			continue
		}
		if w := m.cfg.Weights[h.Kind]; w > 0 {
			hist[i] += w * math.Exp2(-math.Max(0, now.Sub(h.At).Hours())/m.cfg.HistoryHalfLife.Hours())
		}
	}
	// Sum in a fixed order so equal inputs give bit-identical scores.
	srcs := make([]int32, 0, len(hist))
	for i := range hist {
		srcs = append(srcs, i)
	}
	slices.Sort(srcs)
	scores := map[int32]float64{}
	for _, i := range srcs {
		for _, nb := range m.neighbors(i) {
			scores[nb.item] += hist[i] * nb.sim
		}
	}
	personal := make([]Scored, 0, len(scores))
	for j, s := range scores {
		if s > 0 && !skip(m.names[j]) {
			personal = append(personal, Scored{ProductID: m.names[j], Score: s})
		}
	}
	sortScored(personal)
	if len(personal) >= n {
		return personal[:n]
	}
	chosen := map[string]bool{}
	for _, p := range personal {
		chosen[p.ProductID] = true
	}
	for _, t := range m.trending(now) {
		if len(personal) == n {
			break
		}
		if !chosen[t.ProductID] && !skip(t.ProductID) {
			personal = append(personal, t)
		}
	}
	return personal
}

type neighbor struct {
	item int32
	sim  float64
}

// neighbors returns item i's most similar products,
// C(i,j) / (P(i)^β P(j)^β), best first; the caller holds the read lock.
func (m *Recommender) neighbors(i int32) []neighbor {
	m.cacheMu.Lock()
	defer m.cacheMu.Unlock()
	if nb, ok := m.cache[i]; ok {
		return nb
	}
	if m.cache == nil {
		m.cache = map[int32][]neighbor{}
	}
	beta := m.cfg.PopularityExponent
	src := math.Pow(m.pop[i], beta)
	out := make([]neighbor, 0, len(m.adj[i]))
	for j, c := range m.adj[i] {
		out = append(out, neighbor{j, c / (src * math.Pow(m.pop[j], beta))})
	}
	sort.Slice(out, func(a, b int) bool {
		if out[a].sim != out[b].sim {
			return out[a].sim > out[b].sim
		}
		return out[a].item < out[b].item
	})
	if len(out) > m.cfg.Neighbors {
		out = out[:m.cfg.Neighbors:m.cfg.Neighbors]
	}
	m.cache[i] = out
	return out
}

// Trending returns up to n products by decayed popularity at now, skipping
// those skip rejects.
func (m *Recommender) Trending(n int, now time.Time, skip func(string) bool) []Scored {
	m.mu.RLock()
	defer m.mu.RUnlock()
	var out []Scored
	for _, t := range m.trending(now) {
		if len(out) == n {
			break
		}
		if skip == nil || !skip(t.ProductID) {
			out = append(out, t)
		}
	}
	return out
}

// trending lists every product by decayed popularity; the caller holds
// the read lock.
func (m *Recommender) trending(now time.Time) []Scored {
	if len(m.pop) == 0 {
		return nil
	}
	back := math.Exp2(-now.Sub(m.origin).Hours() / m.cfg.HalfLife.Hours())
	out := make([]Scored, 0, len(m.pop))
	for i, p := range m.pop {
		if p > 0 {
			out = append(out, Scored{ProductID: m.names[i], Score: p * back, Trending: true})
		}
	}
	sortScored(out)
	return out
}

func sortScored(s []Scored) {
	sort.Slice(s, func(i, j int) bool {
		if s[i].Score != s[j].Score {
			return s[i].Score > s[j].Score
		}
		return s[i].ProductID < s[j].ProductID
	})
}

// Products is the number of distinct products the model knows.
func (m *Recommender) Products() int {
	m.mu.RLock()
	defer m.mu.RUnlock()
	return len(m.names)
}

// Coverage is the share of known products that have at least one
// co-occurring neighbour, i.e. that can lead to a personal recommendation.
func (m *Recommender) Coverage() float64 {
	m.mu.RLock()
	defer m.mu.RUnlock()
	if len(m.adj) == 0 {
		return 0
	}
	n := 0
	for _, a := range m.adj {
		if len(a) > 0 {
			n++
		}
	}
	return float64(n) / float64(len(m.adj))
}
