package importer

import (
	"testing"

	"github.com/nudge-email/nudge/config"
)

func TestOptionsFor(t *testing.T) {
	t.Parallel()
	cfg := config.Default()
	cfg.Timezone = "Europe/Berlin"
	cfg.Stores = append(cfg.Stores,
		config.Store{ID: "wc-eu", Platform: "woocommerce", Currency: "EUR"},
		config.Store{ID: "wc-uk", Platform: "woocommerce", Currency: "GBP"})
	tests := []struct {
		format, store string
		wantID        string
		wantCurrency  string
		err           string
	}{
		{format: FormatShopify, wantID: "main", wantCurrency: "USD"},
		{format: FormatShopify, store: "main", wantID: "main", wantCurrency: "USD"},
		{format: FormatWooCommerce, store: "wc-uk", wantID: "wc-uk", wantCurrency: "GBP"},
		{format: FormatWooCommerce, err: "import: several woocommerce stores (wc-eu, wc-uk): choose one with --store"},
		{format: FormatWooCommerce, store: "main", err: "import: store \"main\" is a shopify store, but woocommerce-orders-csv is a woocommerce export"},
		{format: FormatShopify, store: "nope", err: "import: no store \"nope\" in the configuration"},
		{format: FormatNDJSON, store: "ignored"},
	}
	for _, tt := range tests {
		o, err := OptionsFor(cfg, tt.format, tt.store)
		if tt.err != "" {
			if err == nil || err.Error() != tt.err {
				t.Errorf("OptionsFor(%s, %q) error = %v, want %q", tt.format, tt.store, err, tt.err)
			}
			continue
		}
		if err != nil {
			t.Fatalf("OptionsFor(%s, %q): %v", tt.format, tt.store, err)
		}
		if o.StoreID != tt.wantID || o.Currency != tt.wantCurrency {
			t.Errorf("OptionsFor(%s, %q) = %+v", tt.format, tt.store, o)
		}
		if tt.wantID != "" && (o.Location == nil || o.Location.String() != "Europe/Berlin") {
			t.Errorf("location = %v", o.Location)
		}
	}
	none := config.Default()
	if _, err := OptionsFor(none, FormatWooCommerce, ""); err == nil || err.Error() != "import: no woocommerce store in the configuration to import woocommerce-orders-csv into" {
		t.Errorf("no woocommerce store: %v", err)
	}
}
