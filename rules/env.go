package rules

import (
	"fmt"
	"time"

	"github.com/nudge-email/nudge/behavior"
	"github.com/nudge-email/nudge/config"
)

// Env is what every rule expression sees. Field tags are the names used
// in expressions; because expressions are compiled against this type, a
// misspelt field is a load-time error.
//
// Helper functions (all windows use rule duration syntax, e.g. "24h", "7d"):
//
//	duration("7d")            a time.Duration, for arithmetic with now and times
//	ago("90d")                now minus the duration, e.g. profile.last_seen < ago("90d")
//	views(product_id, "24h")  how often this profile viewed the product within the window
//	events("cart_updated", "24h")  how many records of a kind this profile has within the window
//	recommend(profile, n)     up to n recommended products (empty when there are none)
type Env struct {
	// Event is the record being evaluated: the trigger record for
	// trigger.where, step.where and send.data; the new record for exit.where.
	Event Event `expr:"event"`
	// Trigger is the record that started the journey (the same as Event
	// in trigger.where).
	Trigger Event `expr:"trigger"`
	// Profile is read fresh at every evaluation, so a purchase between
	// steps is visible to step.where.
	Profile Profile `expr:"profile"`
	// Store is the shop the event belongs to.
	Store Store     `expr:"store"`
	Now   time.Time `expr:"now"`
	// Step is the 1-based step being evaluated; 0 for triggers and exits.
	Step int `expr:"step"`

	// The helper functions; NewEnv binds them to one evaluation.
	DurationFunc  func(d string) time.Duration       `expr:"duration"`
	AgoFunc       func(d string) time.Time           `expr:"ago"`
	ViewsFunc     func(productID, within string) int `expr:"views"`
	EventsFunc    func(kind, within string) int      `expr:"events"`
	RecommendFunc func(p Profile, n int) []Product   `expr:"recommend"`
}

// Event is a behavior record as expressions see it. Money is in minor
// units of Currency.
type Event struct {
	ID          string            `expr:"id"`
	Kind        string            `expr:"kind"`
	Source      string            `expr:"source"`
	Store       string            `expr:"store"`
	At          time.Time         `expr:"at"`
	Email       string            `expr:"email"`
	CustomerID  string            `expr:"customer_id"`
	AnonymousID string            `expr:"anonymous_id"`
	Value       int               `expr:"value"`
	Currency    string            `expr:"currency"`
	Items       []Item            `expr:"items"`
	Query       string            `expr:"query"`
	URL         string            `expr:"url"`
	Seconds     float64           `expr:"seconds"`
	Refs        map[string]string `expr:"refs"`
	Attrs       map[string]any    `expr:"attrs"`
}

// Item is one line item of an event.
type Item struct {
	ProductID string `expr:"product_id"`
	VariantID string `expr:"variant_id"`
	SKU       string `expr:"sku"`
	Title     string `expr:"title"`
	URL       string `expr:"url"`
	ImageURL  string `expr:"image_url"`
	Price     int    `expr:"price"`
	Quantity  int    `expr:"quantity"`
	Category  string `expr:"category"`
}

// Profile is a unified customer as expressions see it. Counts and LastAt
// are keyed by record kind; a kind never seen reads as 0 and the zero time.
type Profile struct {
	ID          string               `expr:"id"`
	Email       string               `expr:"email"`
	FirstName   string               `expr:"first_name"`
	LastName    string               `expr:"last_name"`
	Country     string               `expr:"country"`
	Locale      string               `expr:"locale"`
	Timezone    string               `expr:"timezone"`
	Consent     string               `expr:"consent"`
	OrdersCount int                  `expr:"orders_count"`
	TotalSpent  int                  `expr:"total_spent"`
	Currency    string               `expr:"currency"`
	Counts      map[string]int       `expr:"counts"`
	LastAt      map[string]time.Time `expr:"last_at"`
	FirstSeen   time.Time            `expr:"first_seen"`
	LastSeen    time.Time            `expr:"last_seen"`
	Segment     string               `expr:"segment"`
	Scores      map[string]float64   `expr:"scores"`
}

// Store is the shop as expressions see it.
type Store struct {
	ID       string `expr:"id"`
	Name     string `expr:"name"`
	URL      string `expr:"url"`
	Currency string `expr:"currency"`
}

// Product is a recommended product.
type Product struct {
	ProductID string  `expr:"product_id"`
	Title     string  `expr:"title"`
	URL       string  `expr:"url"`
	ImageURL  string  `expr:"image_url"`
	Price     int     `expr:"price"`
	Currency  string  `expr:"currency"`
	Category  string  `expr:"category"`
	Score     float64 `expr:"score"`
}

// Lookup answers the store-backed helper functions for one evaluation.
// The journey engine implements it over the store; implementations
// panic-free, returning zero values when the store cannot answer.
type Lookup interface {
	// Views counts the profile's product_viewed records naming productID
	// at or after since.
	Views(productID string, since time.Time) int
	// Events counts the profile's records of kind at or after since.
	Events(kind behavior.Kind, since time.Time) int
	// Recommend returns up to n products for the profile.
	Recommend(profileID string, n int) []Product
}

// NewEnv builds the environment for one evaluation. lookup may be nil:
// views and events then count 0 and recommend returns nothing.
func NewEnv(event, trigger Event, p Profile, s Store, now time.Time, lookup Lookup) Env {
	env := Env{Event: event, Trigger: trigger, Profile: p, Store: s, Now: now}
	env.DurationFunc = func(d string) time.Duration { return mustDuration(d) }
	env.AgoFunc = func(d string) time.Time { return now.Add(-mustDuration(d)) }
	env.ViewsFunc = func(productID, within string) int {
		if lookup == nil {
			return 0
		}
		return lookup.Views(productID, now.Add(-mustDuration(within)))
	}
	env.EventsFunc = func(kind, within string) int {
		if lookup == nil {
			return 0
		}
		return lookup.Events(behavior.Kind(kind), now.Add(-mustDuration(within)))
	}
	env.RecommendFunc = func(p Profile, n int) []Product {
		if lookup == nil || n <= 0 {
			return []Product{}
		}
		out := lookup.Recommend(p.ID, n)
		if out == nil {
			out = []Product{}
		}
		return out
	}
	return env
}

// mustDuration panics on a bad duration; expr turns the panic into an
// evaluation error. Literal arguments are checked at load, so this only
// fires for durations computed at run time.
func mustDuration(s string) time.Duration {
	d, err := config.ParseDuration(s)
	if err != nil {
		panic(fmt.Errorf("duration: %w", err))
	}
	return d
}

// EventOf converts a record for expressions.
func EventOf(r behavior.Record) Event {
	e := Event{
		ID: r.ID, Kind: string(r.Kind), Source: r.Source, Store: r.Store, At: r.At,
		Email: r.Email, CustomerID: r.CustomerID, AnonymousID: r.AnonymousID,
		Value: int(r.Value), Currency: r.Currency, Query: r.Query, URL: r.URL,
		Seconds: r.Seconds, Refs: r.Refs, Attrs: r.Attrs,
	}
	if e.Refs == nil {
		e.Refs = map[string]string{}
	}
	if e.Attrs == nil {
		e.Attrs = map[string]any{}
	}
	e.Items = make([]Item, len(r.Items))
	for i, it := range r.Items {
		e.Items[i] = Item{
			ProductID: it.ProductID, VariantID: it.VariantID, SKU: it.SKU, Title: it.Title,
			URL: it.URL, ImageURL: it.ImageURL, Price: int(it.Price), Quantity: it.Quantity, Category: it.Category,
		}
	}
	return e
}

// StoreOf converts a configured store for expressions.
func StoreOf(s config.Store) Store {
	return Store{ID: s.ID, Name: s.Name, URL: s.URL, Currency: s.Currency}
}
