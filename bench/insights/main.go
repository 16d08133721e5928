// Command insights reproduces the insights evaluations of issue 6: the
// BG/NBD and Gamma-Gamma fits on CDNOW against the published values, and
// precision/recall/hit-rate@10 of the item-to-item recommendations on the
// UCI Online Retail data against a popularity baseline. See
// bench/README.md, section Insights.
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/nudge-email/nudge/insights"
)

func main() {
	if err := run(os.Args[1:], os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "bench/insights:", err)
		os.Exit(1)
	}
}

func run(args []string, w io.Writer) error {
	fs := flag.NewFlagSet("insights", flag.ContinueOnError)
	data := fs.String("data", "../shared/data", "directory holding onlineretail.csv.gz and CDNOW_sample.txt")
	splitS := fs.String("split", "2011-09-01", "train on invoices before this date")
	k := fs.Int("k", 10, "list length")
	def := insights.DefaultRecommenderConfig()
	window := fs.Duration("window", def.Window, "co-occurrence window between one customer's interactions")
	halfLife := fs.Duration("half-life", def.HalfLife, "decay half-life")
	beta := fs.Float64("beta", def.PopularityExponent, "popularity exponent")
	asJSON := fs.Bool("json", false, "print JSON")
	if err := fs.Parse(args); err != nil {
		return err
	}
	split, err := time.Parse("2006-01-02", *splitS)
	if err != nil {
		return fmt.Errorf("split: %w", err)
	}
	cd, err := fitCDNOW(*data + "/CDNOW_sample.txt")
	if err != nil {
		return err
	}
	f, err := openRetail(*data + "/onlineretail.csv.gz")
	if err != nil {
		return err
	}
	defer f.Close()
	invs, st, err := readRetail(f)
	if err != nil {
		return err
	}
	cfg := def
	cfg.Window, cfg.HalfLife, cfg.PopularityExponent = *window, *halfLife, *beta
	ev := evaluate(invs, split, *k, cfg)
	if *asJSON {
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(map[string]any{"cdnow": cd, "retail_rows": st, "recommendations": ev})
	}
	fmt.Fprintf(w, "CDNOW_sample (calibration end 1997-09-30, %d customers)\n", cd.BGNBD.Customers)
	fmt.Fprintf(w, "  BG/NBD       r=%.4f alpha=%.4f a=%.4f b=%.4f  log-likelihood=%.4f\n", cd.BGNBD.R, cd.BGNBD.Alpha, cd.BGNBD.A, cd.BGNBD.B, cd.BGNBD.LogLikelihood)
	fmt.Fprintf(w, "  E[Y(39) | x=2, t_x=30.43, T=38.86] = %.4f\n", cd.Conditional)
	fmt.Fprintf(w, "  Gamma-Gamma  p=%.4f q=%.4f gamma=%.4f  (%d repeat customers)\n", cd.GammaGamma.P, cd.GammaGamma.Q, cd.GammaGamma.Gamma, cd.GammaGamma.Customers)
	fmt.Fprintf(w, "Online Retail: %d rows, kept %d (dropped: %d no customer, %d cancellations, %d quantity <= 0)\n", st.Rows, st.Kept, st.NoCustomer, st.Cancelled, st.NonPositive)
	fmt.Fprintf(w, "  train invoices before %s: %d, products %d, coverage %.3f\n", *splitS, ev.TrainInvoices, ev.Products, ev.Coverage)
	fmt.Fprintf(w, "  customers evaluated: %d (plus %d active in both periods who only re-bought)\n", ev.Customers, ev.RepeatOnly)
	fmt.Fprintf(w, "  %-12s precision@%d=%.4f recall@%d=%.4f hit-rate@%d=%.4f\n", "item-item", ev.K, ev.Ours.Precision, ev.K, ev.Ours.Recall, ev.K, ev.Ours.HitRate)
	fmt.Fprintf(w, "  %-12s precision@%d=%.4f recall@%d=%.4f hit-rate@%d=%.4f\n", "popularity", ev.K, ev.Popularity.Precision, ev.K, ev.Popularity.Recall, ev.K, ev.Popularity.HitRate)
	fmt.Fprintf(w, "  ratio (precision ours / popularity) = %.2f\n", ev.Ratio)
	return nil
}

// cdnowFit is the CDNOW part of the report.
type cdnowFit struct {
	BGNBD       insights.BGNBD      `json:"bgnbd"`
	Conditional float64             `json:"conditional_expected_39w"`
	GammaGamma  insights.GammaGamma `json:"gamma_gamma"`
}

func fitCDNOW(path string) (cdnowFit, error) {
	f, err := os.Open(path)
	if err != nil {
		return cdnowFit{}, err
	}
	defer f.Close()
	rows, err := insights.ReadCDNOW(f)
	if err != nil {
		return cdnowFit{}, err
	}
	cs := insights.SummarizeCDNOW(rows, time.Date(1997, 9, 30, 0, 0, 0, 0, time.UTC))
	b, err := insights.FitBGNBD(cs)
	if err != nil {
		return cdnowFit{}, err
	}
	obs := make([]insights.SpendObservation, len(cs))
	for i, c := range cs {
		obs[i] = insights.SpendObservation{Frequency: c.Frequency, Mean: c.MonetaryValue}
	}
	g, err := insights.FitGammaGamma(obs)
	if err != nil {
		return cdnowFit{}, err
	}
	return cdnowFit{
		BGNBD:       b,
		Conditional: b.ExpectedPurchases(39, insights.RFM{Frequency: 2, Recency: 30.43, T: 38.86}),
		GammaGamma:  g,
	}, nil
}
