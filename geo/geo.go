// Package geo holds the time zones of places: which IANA zone a customer
// most likely lives in, from the country and region of the addresses
// stores send, for customers whose browser never told nudge its zone.
// Quiet hours and best send hours are then the customer's, not the
// shop's.
package geo

import "strings"

// Zone returns the IANA zone of a country (ISO 3166-1 alpha-2) and region
// (ISO 3166-2 subdivision code, "KY" or "US-KY"), or "" when the place
// does not tell: an unknown country, or a country whose zones differ by
// hours (the United States, Canada, Australia) without a known region.
func Zone(country, region string) string {
	country = strings.ToUpper(strings.TrimSpace(country))
	region = strings.ToUpper(strings.TrimSpace(region))
	if i := strings.IndexByte(region, '-'); i >= 0 {
		region = region[i+1:]
	}
	if z := regionZones[country][region]; z != "" {
		return z
	}
	if z := singleZone[country]; z != "" {
		return z
	}
	return multiZoneDefault[country]
}

// multiZoneDefault is the zone of most of the people of a country with
// several zones, where the others are few or within an hour of it.
// Countries missing here (US, CA, AU) need their region.
var multiZoneDefault = map[string]string{
	"AR": "America/Argentina/Buenos_Aires",
	"BR": "America/Sao_Paulo",
	"CD": "Africa/Kinshasa",
	"CL": "America/Santiago",
	"CN": "Asia/Shanghai",
	"CY": "Asia/Nicosia",
	"DE": "Europe/Berlin",
	"EC": "America/Guayaquil",
	"ES": "Europe/Madrid",
	"FM": "Pacific/Pohnpei",
	"GL": "America/Nuuk",
	"ID": "Asia/Jakarta",
	"KI": "Pacific/Tarawa",
	"KZ": "Asia/Almaty",
	"MH": "Pacific/Majuro",
	"MN": "Asia/Ulaanbaatar",
	"MX": "America/Mexico_City",
	"MY": "Asia/Kuala_Lumpur",
	"NZ": "Pacific/Auckland",
	"PF": "Pacific/Tahiti",
	"PG": "Pacific/Port_Moresby",
	"PS": "Asia/Gaza",
	"PT": "Europe/Lisbon",
	"RU": "Europe/Moscow",
	"UA": "Europe/Kyiv",
	"UZ": "Asia/Tashkent",
}

// regionZones maps the regions of countries whose zones differ by hours,
// by the subdivision codes Shopify, WooCommerce and Stripe send.
var regionZones = map[string]map[string]string{
	"US": {
		"AL": "America/Chicago", "AK": "America/Anchorage", "AZ": "America/Phoenix", "AR": "America/Chicago",
		"CA": "America/Los_Angeles", "CO": "America/Denver", "CT": "America/New_York", "DE": "America/New_York",
		"DC": "America/New_York", "FL": "America/New_York", "GA": "America/New_York", "HI": "Pacific/Honolulu",
		"ID": "America/Boise", "IL": "America/Chicago", "IN": "America/Indiana/Indianapolis", "IA": "America/Chicago",
		"KS": "America/Chicago", "KY": "America/Kentucky/Louisville", "LA": "America/Chicago", "ME": "America/New_York",
		"MD": "America/New_York", "MA": "America/New_York", "MI": "America/Detroit", "MN": "America/Chicago",
		"MS": "America/Chicago", "MO": "America/Chicago", "MT": "America/Denver", "NE": "America/Chicago",
		"NV": "America/Los_Angeles", "NH": "America/New_York", "NJ": "America/New_York", "NM": "America/Denver",
		"NY": "America/New_York", "NC": "America/New_York", "ND": "America/Chicago", "OH": "America/New_York",
		"OK": "America/Chicago", "OR": "America/Los_Angeles", "PA": "America/New_York", "RI": "America/New_York",
		"SC": "America/New_York", "SD": "America/Chicago", "TN": "America/Chicago", "TX": "America/Chicago",
		"UT": "America/Denver", "VT": "America/New_York", "VA": "America/New_York", "WA": "America/Los_Angeles",
		"WV": "America/New_York", "WI": "America/Chicago", "WY": "America/Denver",
		"PR": "America/Puerto_Rico", "VI": "America/St_Thomas", "GU": "Pacific/Guam", "AS": "Pacific/Pago_Pago",
		"MP": "Pacific/Saipan",
	},
	"CA": {
		"AB": "America/Edmonton", "BC": "America/Vancouver", "MB": "America/Winnipeg", "NB": "America/Moncton",
		"NL": "America/St_Johns", "NS": "America/Halifax", "NT": "America/Edmonton", "NU": "America/Iqaluit",
		"ON": "America/Toronto", "PE": "America/Halifax", "QC": "America/Toronto", "SK": "America/Regina",
		"YT": "America/Whitehorse",
	},
	"AU": {
		"ACT": "Australia/Sydney", "NSW": "Australia/Sydney", "NT": "Australia/Darwin", "QLD": "Australia/Brisbane",
		"SA": "Australia/Adelaide", "TAS": "Australia/Hobart", "VIC": "Australia/Melbourne", "WA": "Australia/Perth",
	},
	"BR": {
		"AC": "America/Rio_Branco", "AM": "America/Manaus", "MT": "America/Cuiaba", "MS": "America/Campo_Grande",
		"RO": "America/Porto_Velho", "RR": "America/Boa_Vista",
	},
	"MX": {
		"BC": "America/Tijuana", "BCN": "America/Tijuana", "BCS": "America/Mazatlan", "SIN": "America/Mazatlan",
		"NAY": "America/Mazatlan", "SON": "America/Hermosillo", "CHH": "America/Chihuahua", "CHIH": "America/Chihuahua",
		"QR": "America/Cancun", "QROO": "America/Cancun", "ROO": "America/Cancun",
	},
}
