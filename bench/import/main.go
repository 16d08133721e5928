// Command import measures `nudge import` on real retail history: it
// converts the UCI Online Retail data set (541,909 invoice lines of a UK
// gift shop, 2010–2011) into records-ndjson — one order_placed per
// invoice with its lines as items — and imports it into a fresh bbolt
// store twice, the second time to measure a run that is all duplicates.
//
//	go run ./bench/import [-data onlineretail.csv.gz] [-dir DIR] [-batch N] [-cpuprofile FILE]
//
// The data set is not one of nudge's import formats, hence the converter.
// Rows without a CustomerID cannot be tied to a person and cancelled
// invoices (InvoiceNo starting with C) are not purchases, so both are
// left out, as are lines with a quantity below one.
package main

import (
	"bufio"
	"compress/gzip"
	"context"
	"encoding/csv"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime/pprof"
	"strconv"
	"strings"
	"time"

	"github.com/nudge-email/nudge/behavior"
	"github.com/nudge-email/nudge/importer"
	"github.com/nudge-email/nudge/storage"
)

func main() {
	data := flag.String("data", "/work/shared/data/onlineretail.csv.gz", "the Online Retail CSV (gzip or plain)")
	dir := flag.String("dir", "", "work directory for the ndjson file and the store (default: a new temp dir, removed after)")
	batch := flag.Int("batch", importer.DefaultBatchSize, "records per Append")
	cpuprofile := flag.String("cpuprofile", "", "write a CPU profile of the imports to this file")
	flag.Parse()
	if *cpuprofile != "" {
		f, err := os.Create(*cpuprofile)
		if err == nil {
			err = pprof.StartCPUProfile(f)
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, "bench/import:", err)
			os.Exit(1)
		}
		defer pprof.StopCPUProfile()
	}
	if err := run(*data, *dir, *batch); err != nil {
		pprof.StopCPUProfile()
		fmt.Fprintln(os.Stderr, "bench/import:", err)
		os.Exit(1)
	}
}

func run(data, dir string, batch int) error {
	if dir == "" {
		d, err := os.MkdirTemp("", "nudge-bench-import-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(d)
		dir = d
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	ndjson := filepath.Join(dir, "onlineretail.ndjson")
	start := time.Now()
	st, err := convertFile(data, ndjson)
	if err != nil {
		return err
	}
	fmt.Printf("convert: %d rows → %d orders (%d rows without customer, %d cancelled, %d with quantity < 1) in %s\n",
		st.rows, st.orders, st.noCustomer, st.cancelled, st.badQuantity, time.Since(start).Round(time.Millisecond))

	db, err := storage.OpenDir(filepath.Join(dir, "data"), storage.Options{})
	if err != nil {
		return err
	}
	defer db.Close()
	ctx := context.Background()
	for _, pass := range []string{"first import", "re-import"} {
		rep, err := importer.Run(ctx, db, []string{ndjson}, importer.FormatNDJSON, importer.Options{Progress: os.Stderr, BatchSize: batch})
		if err != nil {
			return err
		}
		fmt.Printf("%s: ", pass)
		if err := rep.WriteText(os.Stdout); err != nil {
			return err
		}
		fmt.Printf("%s: %.0f records/s\n", pass, float64(rep.Records)/rep.Elapsed.Seconds())
	}
	stats, err := db.Stats(ctx)
	if err != nil {
		return err
	}
	fmt.Printf("store: %d records, %d profiles, %d products, %.1f MiB\n", stats.Records, stats.Profiles, stats.Products, float64(stats.FileBytes)/(1<<20))
	return nil
}

// convertStats counts what the conversion did.
type convertStats struct {
	rows, orders, noCustomer, cancelled, badQuantity int
}

func convertFile(in, out string) (convertStats, error) {
	f, err := os.Open(in)
	if err != nil {
		return convertStats{}, err
	}
	defer f.Close()
	var r io.Reader = bufio.NewReaderSize(f, 1<<16)
	if strings.HasSuffix(in, ".gz") {
		zr, err := gzip.NewReader(r)
		if err != nil {
			return convertStats{}, err
		}
		defer zr.Close()
		r = zr
	}
	o, err := os.Create(out)
	if err != nil {
		return convertStats{}, err
	}
	w := bufio.NewWriterSize(o, 1<<16)
	st, err := convert(r, w)
	if err == nil {
		err = w.Flush()
	}
	if cerr := o.Close(); err == nil {
		err = cerr
	}
	return st, err
}

// convert turns Online Retail rows (InvoiceNo, StockCode, Description,
// Quantity, InvoiceDate, UnitPrice, CustomerID, Country) into one
// order_placed line per invoice; an invoice's rows are adjacent.
func convert(r io.Reader, w io.Writer) (convertStats, error) {
	var st convertStats
	cr := csv.NewReader(r)
	cr.ReuseRecord = true
	header, err := cr.Read()
	if err != nil {
		return st, fmt.Errorf("header: %w", err)
	}
	col := map[string]int{}
	for i, h := range header {
		col[strings.TrimSpace(h)] = i
	}
	for _, need := range []string{"InvoiceNo", "StockCode", "Description", "Quantity", "InvoiceDate", "UnitPrice", "CustomerID", "Country"} {
		if _, ok := col[need]; !ok {
			return st, fmt.Errorf("missing column %s", need)
		}
	}
	enc := json.NewEncoder(w)
	var cur *behavior.Record
	flush := func() error {
		if cur == nil {
			return nil
		}
		cur.Value = behavior.ItemValue(cur.Items)
		st.orders++
		err := enc.Encode(cur)
		cur = nil
		return err
	}
	for {
		rec, err := cr.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return st, err
		}
		st.rows++
		get := func(name string) string { return strings.TrimSpace(rec[col[name]]) }
		invoice, customer := get("InvoiceNo"), strings.TrimSuffix(get("CustomerID"), ".0")
		switch {
		case customer == "":
			st.noCustomer++
			continue
		case strings.HasPrefix(invoice, "C"):
			st.cancelled++
			continue
		}
		qty, err := strconv.Atoi(get("Quantity"))
		if err != nil || qty < 1 {
			st.badQuantity++
			continue
		}
		price, err := behavior.ParseMoney(get("UnitPrice"), "GBP")
		if err != nil {
			return st, fmt.Errorf("row %d: %w", st.rows+1, err)
		}
		if cur == nil || cur.Ref(behavior.RefOrderID) != invoice {
			if err := flush(); err != nil {
				return st, err
			}
			at, err := time.Parse(time.RFC3339, get("InvoiceDate"))
			if err != nil {
				return st, fmt.Errorf("row %d: %w", st.rows+1, err)
			}
			cur = &behavior.Record{
				ID:       "onlineretail-" + invoice,
				Kind:     behavior.OrderPlaced,
				Source:   "onlineretail",
				Store:    "uk",
				At:       at,
				Email:    "customer-" + customer + "@example.com",
				Currency: "GBP",
				Person:   &behavior.Person{Country: get("Country")},
			}
			cur.SetRef(behavior.RefOrderID, invoice)
		}
		cur.Items = append(cur.Items, behavior.Item{
			ProductID: get("StockCode"),
			SKU:       get("StockCode"),
			Title:     get("Description"),
			Price:     price,
			Quantity:  qty,
		})
	}
	return st, flush()
}
