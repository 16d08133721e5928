package importer

import (
	"fmt"
	"strings"
	"time"

	"github.com/nudge-email/nudge/config"
)

// OptionsFor fills the store-dependent options of an import from the
// configuration, for `nudge import` and the admin API: the store the
// export came from (storeID, or else the only configured store of the
// format's platform), its currency for rows without one, and the
// configured timezone for timestamps without an offset (WooCommerce
// exports the site's local time, which nudge assumes is that zone).
// records-ndjson lines carry their own store and get only the stores'
// platforms (Options.StoreSources).
func OptionsFor(cfg *config.Config, format, storeID string) (Options, error) {
	platform := ""
	switch format {
	case FormatShopify:
		platform = "shopify"
	case FormatWooCommerce:
		platform = "woocommerce"
	default:
		return Options{StoreSources: StoreSources(cfg)}, nil
	}
	var store config.Store
	if storeID != "" {
		s, ok := cfg.StoreByID(storeID)
		if !ok {
			return Options{}, fmt.Errorf("import: no store %q in the configuration", storeID)
		}
		if s.Platform != platform {
			return Options{}, fmt.Errorf("import: store %q is a %s store, but %s is a %s export", storeID, s.Platform, format, platform)
		}
		store = s
	} else {
		var ids []string
		for _, s := range cfg.Stores {
			if s.Platform == platform {
				store = s
				ids = append(ids, s.ID)
			}
		}
		switch len(ids) {
		case 0:
			return Options{}, fmt.Errorf("import: no %s store in the configuration to import %s into", platform, format)
		case 1:
		default:
			return Options{}, fmt.Errorf("import: several %s stores (%s): choose one with --store", platform, strings.Join(ids, ", "))
		}
	}
	loc, err := time.LoadLocation(cfg.Timezone)
	if err != nil {
		return Options{}, fmt.Errorf("import: timezone: %w", err)
	}
	return Options{StoreID: store.ID, Currency: store.Currency, Location: loc}, nil
}

// StoreSources maps every configured store id to its platform, the
// source its webhooks' records carry (see Options.StoreSources).
func StoreSources(cfg *config.Config) map[string]string {
	m := make(map[string]string, len(cfg.Stores))
	for _, s := range cfg.Stores {
		m[s.ID] = s.Platform
	}
	return m
}
