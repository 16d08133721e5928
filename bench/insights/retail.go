package main

import (
	"compress/gzip"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
	"time"

	"github.com/nudge-email/nudge/behavior"
)

// invoice is one Online Retail invoice of one customer: the order record
// nudge would have stored for it.
type invoice struct {
	Customer string
	Record   behavior.Record
}

// retailStats counts what cleaning kept and dropped.
type retailStats struct {
	Rows, NoCustomer, Cancelled, NonPositive, Kept int
}

// openRetail opens onlineretail.csv(.gz).
func openRetail(path string) (io.ReadCloser, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	if !strings.HasSuffix(path, ".gz") {
		return f, nil
	}
	z, err := gzip.NewReader(f)
	if err != nil {
		f.Close()
		return nil, err
	}
	return struct {
		io.Reader
		io.Closer
	}{z, f}, nil
}

// readRetail parses the UCI Online Retail CSV (InvoiceNo, StockCode,
// Description, Quantity, InvoiceDate, UnitPrice, CustomerID, Country) and
// keeps the clean rows: a CustomerID, an invoice not starting with C
// (cancellations) and a positive quantity. Rows become one order record
// per invoice, prices in pence, sorted by time.
func readRetail(r io.Reader) ([]invoice, retailStats, error) {
	var st retailStats
	cr := csv.NewReader(r)
	cr.ReuseRecord = true
	head, err := cr.Read()
	if err != nil {
		return nil, st, fmt.Errorf("retail: header: %w", err)
	}
	col := map[string]int{}
	for i, h := range head {
		col[strings.TrimSpace(strings.TrimPrefix(h, "\ufeff"))] = i
	}
	need := []string{"InvoiceNo", "StockCode", "Quantity", "InvoiceDate", "UnitPrice", "CustomerID"}
	for _, n := range need {
		if _, ok := col[n]; !ok {
			return nil, st, fmt.Errorf("retail: header lacks %s", n)
		}
	}
	byInvoice := map[string]*invoice{}
	for line := 2; ; line++ {
		row, err := cr.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, st, fmt.Errorf("retail: line %d: %w", line, err)
		}
		if len(row) < len(head) {
			return nil, st, fmt.Errorf("retail: line %d: %d fields", line, len(row))
		}
		st.Rows++
		inv, cust := strings.TrimSpace(row[col["InvoiceNo"]]), strings.TrimSuffix(strings.TrimSpace(row[col["CustomerID"]]), ".0")
		switch {
		case cust == "":
			st.NoCustomer++
			continue
		case strings.HasPrefix(inv, "C"):
			st.Cancelled++
			continue
		}
		var qty int
		if _, err := fmt.Sscan(row[col["Quantity"]], &qty); err != nil || qty <= 0 {
			st.NonPositive++
			continue
		}
		at, err := parseRetailTime(row[col["InvoiceDate"]])
		if err != nil {
			return nil, st, fmt.Errorf("retail: line %d: %w", line, err)
		}
		price, err := behavior.ParseMoney(row[col["UnitPrice"]], "GBP")
		if err != nil {
			return nil, st, fmt.Errorf("retail: line %d: %w", line, err)
		}
		st.Kept++
		iv := byInvoice[inv]
		if iv == nil {
			iv = &invoice{Customer: cust, Record: behavior.Record{
				ID: "retail-" + inv, Kind: behavior.OrderPlaced, Source: "retail", At: at,
				CustomerID: cust, Currency: "GBP",
			}}
			byInvoice[inv] = iv
		}
		iv.Record.Items = append(iv.Record.Items, behavior.Item{ProductID: strings.TrimSpace(row[col["StockCode"]]), Price: price, Quantity: qty})
	}
	out := make([]invoice, 0, len(byInvoice))
	for _, iv := range byInvoice {
		iv.Record.Value = behavior.ItemValue(iv.Record.Items)
		out = append(out, *iv)
	}
	sort.Slice(out, func(i, j int) bool {
		if !out[i].Record.At.Equal(out[j].Record.At) {
			return out[i].Record.At.Before(out[j].Record.At)
		}
		return out[i].Record.ID < out[j].Record.ID
	})
	return out, st, nil
}

// parseRetailTime reads the dataset's RFC 3339 dates, and the
// "12/1/2010 8:26" form of the original spreadsheet export.
func parseRetailTime(s string) (time.Time, error) {
	s = strings.TrimSpace(s)
	for _, layout := range []string{time.RFC3339, "2006-01-02 15:04:05", "1/2/2006 15:04"} {
		if t, err := time.Parse(layout, s); err == nil {
			return t, nil
		}
	}
	return time.Time{}, fmt.Errorf("date %q", s)
}
