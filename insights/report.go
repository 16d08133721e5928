package insights

import (
	"fmt"
	"io"
	"time"
)

// Confidence levels of a fitted model.
const (
	ConfidenceOK  = "ok"
	ConfidenceLow = "low" // not enough data: no parameters, no scores
)

// ModelStatus says whether a model could be fitted and why not.
type ModelStatus struct {
	Confidence string `json:"confidence"`
	Note       string `json:"note,omitempty"`
}

// ReportInterval is a product's replenishment interval in days.
type ReportInterval struct {
	ProductID  string  `json:"product_id"`
	Title      string  `json:"title,omitempty"`
	MedianDays float64 `json:"median_days"`
	P25Days    float64 `json:"p25_days"`
	P75Days    float64 `json:"p75_days"`
	Samples    int     `json:"samples"`
	Buyers     int     `json:"buyers"`
}

// RecommendationStats describes the recommendation model.
type RecommendationStats struct {
	Products int `json:"products"`
	// Coverage is the share of products with at least one co-occurring
	// neighbour.
	Coverage float64 `json:"coverage"`
}

// Report is what a refit learned; `nudge insights` prints it and
// GET /api/v1/insights returns it as JSON.
type Report struct {
	AsOf      time.Time `json:"as_of"`
	Profiles  int       `json:"profiles"`
	Records   int       `json:"records"`
	Customers int       `json:"customers"` // profiles with at least one order

	BGNBD            *BGNBD      `json:"bgnbd,omitempty"`
	BGNBDStatus      ModelStatus `json:"bgnbd_status"`
	GammaGamma       *GammaGamma `json:"gamma_gamma,omitempty"`
	GammaGammaStatus ModelStatus `json:"gamma_gamma_status"`

	Replenishment  []ReportInterval    `json:"replenishment"`
	Recommendation RecommendationStats `json:"recommendations"`
	// ShopBestHour is the shop-wide best send hour (0–23, customers'
	// local time), absent without engagement data.
	ShopBestHour   *int `json:"shop_best_hour,omitempty"`
	SendTimeEvents int  `json:"send_time_events"`

	Segments          map[string]int    `json:"segments"`
	SegmentThresholds SegmentThresholds `json:"segment_thresholds"`
	Scored            int               `json:"scored"` // profiles whose scores were written
	Derived           map[string]int    `json:"derived"`
}

// WriteText prints the report for people.
func (r Report) WriteText(w io.Writer) error {
	p := &errWriter{w: w}
	p.printf("insights as of %s: %d profiles, %d customers, %d records\n", r.AsOf.UTC().Format(time.RFC3339), r.Profiles, r.Customers, r.Records)
	if b := r.BGNBD; b != nil {
		p.printf("BG/NBD       r=%.4f alpha=%.4f a=%.4f b=%.4f  log-likelihood=%.2f  (%d customers, %d repeat)\n", b.R, b.Alpha, b.A, b.B, b.LogLikelihood, b.Customers, b.Repeaters)
	} else {
		p.printf("BG/NBD       confidence: low (%s)\n", r.BGNBDStatus.Note)
	}
	if g := r.GammaGamma; g != nil {
		p.printf("Gamma-Gamma  p=%.4f q=%.4f gamma=%.4f  (%d repeat customers)\n", g.P, g.Q, g.Gamma, g.Customers)
	} else {
		p.printf("Gamma-Gamma  confidence: low (%s)\n", r.GammaGammaStatus.Note)
	}
	if len(r.Replenishment) == 0 {
		p.printf("replenishment: no product has %d repeat-purchase intervals yet\n", MinReplenishIntervals)
	} else {
		p.printf("replenishment (median days between repeat purchases):\n")
		for _, ri := range r.Replenishment {
			p.printf("  %-24s %6.1f d  (p25 %.1f, p75 %.1f; %d intervals from %d buyers)  %s\n", ri.ProductID, ri.MedianDays, ri.P25Days, ri.P75Days, ri.Samples, ri.Buyers, ri.Title)
		}
	}
	p.printf("recommendations: %d products, coverage %.1f%%\n", r.Recommendation.Products, 100*r.Recommendation.Coverage)
	if r.ShopBestHour != nil {
		p.printf("send time: shop-wide best hour %02d:00 (%d events)\n", *r.ShopBestHour, r.SendTimeEvents)
	} else {
		p.printf("send time: no clicks, opens or orders yet\n")
	}
	p.printf("segments:")
	for _, s := range Segments() {
		p.printf(" %s=%d", s, r.Segments[s])
	}
	p.printf("\n")
	p.printf("scored profiles: %d; derived records: replenishment_due=%d became_inactive=%d\n", r.Scored, r.Derived["replenishment_due"], r.Derived["became_inactive"])
	return p.err
}

// errWriter keeps the first write error so WriteText can print without
// checking every line.
type errWriter struct {
	w   io.Writer
	err error
}

func (e *errWriter) printf(format string, args ...any) {
	if e.err == nil {
		_, e.err = fmt.Fprintf(e.w, format, args...)
	}
}
