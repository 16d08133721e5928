package main

import (
	"bytes"
	"strings"
	"testing"
)

func TestConvert(t *testing.T) {
	in := `InvoiceNo,StockCode,Description,Quantity,InvoiceDate,UnitPrice,CustomerID,Country
536365,85123A,WHITE HANGING HEART T-LIGHT HOLDER,6,2010-12-01T08:26:00Z,2.55,17850,United Kingdom
536365,71053,WHITE METAL LANTERN,6,2010-12-01T08:26:00Z,3.39,17850,United Kingdom
536366,22633,HAND WARMER UNION JACK,6,2010-12-01T08:28:00Z,1.85,,United Kingdom
C536379,D,Discount,-1,2010-12-01T09:41:00Z,27.50,14527,United Kingdom
536367,84879,ASSORTED COLOUR BIRD ORNAMENT,0,2010-12-01T08:34:00Z,1.69,13047,United Kingdom
536368,22960,JAM MAKING SET WITH JARS,6,2010-12-01T08:34:00Z,4.25,13047.0,United Kingdom
`
	var out bytes.Buffer
	st, err := convert(strings.NewReader(in), &out)
	if err != nil {
		t.Fatal(err)
	}
	if st != (convertStats{rows: 6, orders: 2, noCustomer: 1, cancelled: 1, badQuantity: 1}) {
		t.Errorf("stats = %+v", st)
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	want := []string{
		`{"id":"onlineretail-536365","kind":"order_placed","source":"onlineretail","store":"uk","at":"2010-12-01T08:26:00Z","email":"customer-17850@example.com","value":3564,"currency":"GBP","items":[{"product_id":"85123A","sku":"85123A","title":"WHITE HANGING HEART T-LIGHT HOLDER","price":255,"quantity":6},{"product_id":"71053","sku":"71053","title":"WHITE METAL LANTERN","price":339,"quantity":6}],"refs":{"order_id":"536365"},"person":{"country":"United Kingdom"}}`,
		`{"id":"onlineretail-536368","kind":"order_placed","source":"onlineretail","store":"uk","at":"2010-12-01T08:34:00Z","email":"customer-13047@example.com","value":2550,"currency":"GBP","items":[{"product_id":"22960","sku":"22960","title":"JAM MAKING SET WITH JARS","price":425,"quantity":6}],"refs":{"order_id":"536368"},"person":{"country":"United Kingdom"}}`,
	}
	if len(lines) != len(want) {
		t.Fatalf("got %d lines:\n%s", len(lines), out.String())
	}
	for i := range want {
		if lines[i] != want[i] {
			t.Errorf("line %d:\n got %s\nwant %s", i+1, lines[i], want[i])
		}
	}
}
