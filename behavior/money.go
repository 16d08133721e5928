package behavior

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// ErrMoney reports an amount that cannot be read as money.
var ErrMoney = errors.New("behavior: invalid money amount")

// zeroDecimal lists ISO 4217 currencies without minor units; threeDecimal
// those with three. Everything else has two.
var zeroDecimal = map[string]bool{
	"BIF": true, "CLP": true, "DJF": true, "GNF": true, "ISK": true, "JPY": true, "KMF": true, "KRW": true,
	"PYG": true, "RWF": true, "UGX": true, "UYI": true, "VND": true, "VUV": true, "XAF": true, "XOF": true, "XPF": true,
}

var threeDecimal = map[string]bool{"BHD": true, "IQD": true, "JOD": true, "KWD": true, "LYD": true, "OMR": true, "TND": true}

// MinorDigits is the number of decimal places of a currency's minor unit.
func MinorDigits(currency string) int {
	c := strings.ToUpper(currency)
	switch {
	case zeroDecimal[c]:
		return 0
	case threeDecimal[c]:
		return 3
	}
	return 2
}

// ParseMoney reads a decimal amount as sent by stores ("199.00", "5",
// "-3.5") into minor units of currency, without going through float64.
// Digits beyond the currency's precision are rounded half away from zero.
func ParseMoney(s, currency string) (int64, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return 0, nil
	}
	neg := false
	switch s[0] {
	case '-':
		neg, s = true, s[1:]
	case '+':
		s = s[1:]
	}
	whole, frac, _ := strings.Cut(s, ".")
	if whole == "" && frac == "" {
		return 0, fmt.Errorf("%w: %q", ErrMoney, s)
	}
	for _, part := range []string{whole, frac} {
		for _, c := range part {
			if c < '0' || c > '9' {
				return 0, fmt.Errorf("%w: %q", ErrMoney, s)
			}
		}
	}
	if len(whole) > 15 {
		return 0, fmt.Errorf("%w: %q is too large", ErrMoney, s)
	}
	digits := MinorDigits(currency)
	roundUp := false
	if len(frac) > digits {
		roundUp = frac[digits] >= '5'
		frac = frac[:digits]
	}
	frac += strings.Repeat("0", digits-len(frac))
	n, err := strconv.ParseInt(whole+frac, 10, 64)
	if whole+frac == "" {
		n, err = 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("%w: %q", ErrMoney, s)
	}
	if roundUp {
		n++
	}
	if neg {
		n = -n
	}
	return n, nil
}

// MoneyFromFloat converts an amount given as a JSON number in major units
// (as Shopify's pixel and WooCommerce line prices do) to minor units.
func MoneyFromFloat(f float64, currency string) int64 {
	return ParseMoneyOrZero(strconv.FormatFloat(f, 'f', -1, 64), currency)
}

// ParseMoneyOrZero is ParseMoney for fields where a bad amount should not
// reject the whole event.
func ParseMoneyOrZero(s, currency string) int64 {
	n, err := ParseMoney(s, currency)
	if err != nil {
		return 0
	}
	return n
}

var currencySymbols = map[string]string{
	"USD": "$", "CAD": "CA$", "AUD": "A$", "NZD": "NZ$", "EUR": "€", "GBP": "£", "JPY": "¥", "INR": "₹",
	"CHF": "CHF ", "SEK": "kr ", "NOK": "kr ", "DKK": "kr ", "PLN": "zł ", "BRL": "R$", "MXN": "MX$",
}

// FormatMoney renders minor units for an email: "$54.00", "€9.90",
// "¥5400", falling back to "54.00 XYZ" for currencies without a symbol.
func FormatMoney(minor int64, currency string) string {
	c := strings.ToUpper(currency)
	digits := MinorDigits(c)
	sign := ""
	if minor < 0 {
		sign, minor = "-", -minor
	}
	s := strconv.FormatInt(minor, 10)
	if digits > 0 {
		if len(s) <= digits {
			s = strings.Repeat("0", digits-len(s)+1) + s
		}
		s = s[:len(s)-digits] + "." + s[len(s)-digits:]
	}
	if sym, ok := currencySymbols[c]; ok {
		return sign + sym + s
	}
	if c == "" {
		return sign + s
	}
	return sign + s + " " + c
}

// ErrNegativeAmount reports a negative money amount or quantity on a
// record. Records never carry negative money: a refund is a positive
// amount on an order_refunded record.
var ErrNegativeAmount = errors.New("negative amount")

// CheckAmounts reports a negative value, item price or quantity.
func (r *Record) CheckAmounts() error {
	if r.Value < 0 {
		return fmt.Errorf("%w: value %d", ErrNegativeAmount, r.Value)
	}
	for _, it := range r.Items {
		if it.Price < 0 {
			return fmt.Errorf("%w: item %q price %d", ErrNegativeAmount, it.Title, it.Price)
		}
		if it.Quantity < 0 {
			return fmt.Errorf("%w: item %q quantity %d", ErrNegativeAmount, it.Title, it.Quantity)
		}
	}
	return nil
}
