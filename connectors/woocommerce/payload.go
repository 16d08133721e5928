package woocommerce

import "encoding/json"

// The payload types keep only the fields nudge reads of the wc/v3 REST
// resources a webhook delivers (PROTOCOLS §2.4).

type meta struct {
	Key   string          `json:"key"`
	Value json.RawMessage `json:"value"`
}

type billing struct {
	FirstName string `json:"first_name"`
	LastName  string `json:"last_name"`
	Country   string `json:"country"`
	State     string `json:"state"`
	Email     string `json:"email"`
	Phone     string `json:"phone"`
}

type lineItem struct {
	Name        string `json:"name"`
	ProductID   id     `json:"product_id"`
	VariationID id     `json:"variation_id"`
	Quantity    optInt `json:"quantity"`
	Total       amount `json:"total"`
	SKU         string `json:"sku"`
	Price       amount `json:"price"`
	Image       *struct {
		Src string `json:"src"`
	} `json:"image"`
}

type order struct {
	ID              id         `json:"id"`
	Number          string     `json:"number"`
	OrderKey        string     `json:"order_key"`
	CreatedVia      string     `json:"created_via"`
	Status          string     `json:"status"`
	Currency        string     `json:"currency"`
	DateCreatedGMT  string     `json:"date_created_gmt"`
	DateModifiedGMT string     `json:"date_modified_gmt"`
	DatePaidGMT     string     `json:"date_paid_gmt"`
	DateCompleted   string     `json:"date_completed_gmt"`
	Total           amount     `json:"total"`
	CustomerID      id         `json:"customer_id"`
	Billing         billing    `json:"billing"`
	PaymentMethod   string     `json:"payment_method"`
	MetaData        []meta     `json:"meta_data"`
	LineItems       []lineItem `json:"line_items"`
	Refunds         []struct {
		ID    id     `json:"id"`
		Total amount `json:"total"`
	} `json:"refunds"`
}

type customer struct {
	ID              id      `json:"id"`
	Email           string  `json:"email"`
	FirstName       string  `json:"first_name"`
	LastName        string  `json:"last_name"`
	Role            string  `json:"role"`
	DateCreatedGMT  string  `json:"date_created_gmt"`
	DateModifiedGMT string  `json:"date_modified_gmt"`
	Billing         billing `json:"billing"`
	IsPaying        *bool   `json:"is_paying_customer"`
	MetaData        []meta  `json:"meta_data"`
}

type product struct {
	ID              id     `json:"id"`
	ParentID        id     `json:"parent_id"`
	Name            string `json:"name"`
	Type            string `json:"type"`
	Status          string `json:"status"`
	Permalink       string `json:"permalink"`
	SKU             string `json:"sku"`
	Price           amount `json:"price"`
	DateCreatedGMT  string `json:"date_created_gmt"`
	DateModifiedGMT string `json:"date_modified_gmt"`
	StockQuantity   optInt `json:"stock_quantity"`
	StockStatus     string `json:"stock_status"`
	Images          []struct {
		Src string `json:"src"`
	} `json:"images"`
	Image *struct {
		Src string `json:"src"`
	} `json:"image"`
	Categories []struct {
		Name string `json:"name"`
	} `json:"categories"`
}
