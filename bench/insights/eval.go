package main

import (
	"sort"
	"time"

	"github.com/nudge-email/nudge/behavior"
	"github.com/nudge-email/nudge/insights"
)

// metrics are top-k ranking measures averaged over evaluated customers.
type metrics struct {
	Precision float64 `json:"precision"`
	Recall    float64 `json:"recall"`
	HitRate   float64 `json:"hit_rate"`
}

// evaluation is one run of the split.
type evaluation struct {
	K             int     `json:"k"`
	Customers     int     `json:"customers"`      // active in both periods, with new products after the split
	RepeatOnly    int     `json:"repeat_only"`    // active in both periods, buying only products they had bought
	TrainInvoices int     `json:"train_invoices"` // invoices before the split
	Products      int     `json:"products"`       // distinct products in training
	Coverage      float64 `json:"coverage"`       // share of products with a co-occurring neighbour
	Ours          metrics `json:"ours"`
	Popularity    metrics `json:"popularity"`
	Ratio         float64 `json:"ratio"` // our precision over the baseline's
}

// evaluate trains on invoices before split and scores top-k lists for
// every customer active on both sides, against the products they first
// buy on or after split. The popularity baseline ranks products by
// distinct training customers; both lists leave out what the customer
// already bought, so neither gets credit for repeats.
func evaluate(invs []invoice, split time.Time, k int, cfg insights.RecommenderConfig) evaluation {
	rec := insights.NewRecommender(cfg)
	history := map[string][]insights.Interaction{}
	bought := map[string]map[string]bool{}
	buyers := map[string]map[string]bool{}
	truth := map[string]map[string]bool{}
	ev := evaluation{K: k}
	for _, iv := range invs {
		c := iv.Customer
		if iv.Record.At.Before(split) {
			ev.TrainInvoices++
			rec.Add(iv.Record, c)
			if bought[c] == nil {
				bought[c] = map[string]bool{}
			}
			for _, p := range behavior.ProductIDs(iv.Record.Items) {
				history[c] = append(history[c], insights.Interaction{ProductID: p, Kind: iv.Record.Kind, At: iv.Record.At})
				bought[c][p] = true
				if buyers[p] == nil {
					buyers[p] = map[string]bool{}
				}
				buyers[p][c] = true
			}
			continue
		}
		if truth[c] == nil {
			truth[c] = map[string]bool{}
		}
		for _, p := range behavior.ProductIDs(iv.Record.Items) {
			truth[c][p] = true
		}
	}
	popular := make([]string, 0, len(buyers))
	for p := range buyers {
		popular = append(popular, p)
	}
	sort.Slice(popular, func(i, j int) bool {
		if len(buyers[popular[i]]) != len(buyers[popular[j]]) {
			return len(buyers[popular[i]]) > len(buyers[popular[j]])
		}
		return popular[i] < popular[j]
	})
	ev.Products = len(popular)
	ev.Coverage = rec.Coverage()

	customers := make([]string, 0, len(truth))
	for c := range truth {
		customers = append(customers, c)
	}
	sort.Strings(customers)
	var ours, pop metrics
	for _, c := range customers {
		b := bought[c]
		if b == nil {
			continue // new after the split: not in both periods
		}
		fresh := map[string]bool{}
		for p := range truth[c] {
			if !b[p] {
				fresh[p] = true
			}
		}
		if len(fresh) == 0 {
			ev.RepeatOnly++
			continue
		}
		ev.Customers++
		skip := func(p string) bool { return b[p] }
		var mine []string
		for _, s := range rec.Recommend(history[c], k, split, skip) {
			mine = append(mine, s.ProductID)
		}
		var base []string
		for _, p := range popular {
			if len(base) == k {
				break
			}
			if !b[p] {
				base = append(base, p)
			}
		}
		ours.add(mine, fresh, k)
		pop.add(base, fresh, k)
	}
	ev.Ours, ev.Popularity = ours.mean(ev.Customers), pop.mean(ev.Customers)
	if ev.Popularity.Precision > 0 {
		ev.Ratio = ev.Ours.Precision / ev.Popularity.Precision
	}
	return ev
}

func (m *metrics) add(list []string, truth map[string]bool, k int) {
	hits := 0
	for _, p := range list {
		if truth[p] {
			hits++
		}
	}
	m.Precision += float64(hits) / float64(k)
	m.Recall += float64(hits) / float64(len(truth))
	if hits > 0 {
		m.HitRate++
	}
}

func (m metrics) mean(n int) metrics {
	if n == 0 {
		return metrics{}
	}
	return metrics{Precision: m.Precision / float64(n), Recall: m.Recall / float64(n), HitRate: m.HitRate / float64(n)}
}
