package shopify

// The payload types below keep only the fields nudge reads of Shopify's
// REST resources (PROTOCOLS §1.5–1.6); everything else is ignored.

type address struct {
	FirstName    string `json:"first_name"`
	LastName     string `json:"last_name"`
	Phone        string `json:"phone"`
	CountryCode  string `json:"country_code"`
	ProvinceCode string `json:"province_code"`
}

type marketingConsent struct {
	State            string  `json:"state"`
	OptInLevel       *string `json:"opt_in_level"`
	ConsentUpdatedAt string  `json:"consent_updated_at"`
	CollectedFrom    string  `json:"consent_collected_from"`
}

type customer struct {
	ID                    id                `json:"id"`
	Email                 string            `json:"email"`
	FirstName             string            `json:"first_name"`
	LastName              string            `json:"last_name"`
	Phone                 string            `json:"phone"`
	State                 string            `json:"state"`
	Tags                  string            `json:"tags"`
	VerifiedEmail         *bool             `json:"verified_email"`
	CreatedAt             string            `json:"created_at"`
	UpdatedAt             string            `json:"updated_at"`
	EmailMarketingConsent *marketingConsent `json:"email_marketing_consent"`
	DefaultAddress        *address          `json:"default_address"`
	Addresses             []address         `json:"addresses"`
}

type lineItem struct {
	ProductID    id     `json:"product_id"`
	VariantID    id     `json:"variant_id"`
	SKU          string `json:"sku"`
	Title        string `json:"title"`
	VariantTitle string `json:"variant_title"`
	Name         string `json:"name"`
	Price        amount `json:"price"`
	Quantity     optInt `json:"quantity"`
}

type checkout struct {
	ID                    id         `json:"id"`
	Token                 string     `json:"token"`
	CartToken             string     `json:"cart_token"`
	Email                 string     `json:"email"`
	Phone                 string     `json:"phone"`
	Name                  string     `json:"name"`
	BuyerAcceptsMarketing *bool      `json:"buyer_accepts_marketing"`
	CreatedAt             string     `json:"created_at"`
	UpdatedAt             string     `json:"updated_at"`
	CompletedAt           *string    `json:"completed_at"`
	Currency              string     `json:"currency"`
	CustomerLocale        string     `json:"customer_locale"`
	LineItems             []lineItem `json:"line_items"`
	TotalPrice            amount     `json:"total_price"`
	AbandonedCheckoutURL  string     `json:"abandoned_checkout_url"`
	BillingAddress        *address   `json:"billing_address"`
	ShippingAddress       *address   `json:"shipping_address"`
	Customer              *customer  `json:"customer"`
}

type cart struct {
	ID        id         `json:"id"`
	Token     string     `json:"token"`
	CreatedAt string     `json:"created_at"`
	UpdatedAt string     `json:"updated_at"`
	LineItems []lineItem `json:"line_items"`
}

type order struct {
	ID                    id         `json:"id"`
	Name                  string     `json:"name"`
	Email                 string     `json:"email"`
	ContactEmail          string     `json:"contact_email"`
	Phone                 string     `json:"phone"`
	Currency              string     `json:"currency"`
	TotalPrice            amount     `json:"total_price"`
	CreatedAt             string     `json:"created_at"`
	ProcessedAt           string     `json:"processed_at"`
	UpdatedAt             string     `json:"updated_at"`
	CancelledAt           string     `json:"cancelled_at"`
	CancelReason          string     `json:"cancel_reason"`
	FinancialStatus       string     `json:"financial_status"`
	FulfillmentStatus     string     `json:"fulfillment_status"`
	CheckoutToken         string     `json:"checkout_token"`
	CartToken             string     `json:"cart_token"`
	BuyerAcceptsMarketing *bool      `json:"buyer_accepts_marketing"`
	CustomerLocale        string     `json:"customer_locale"`
	Test                  bool       `json:"test"`
	LineItems             []lineItem `json:"line_items"`
	Customer              *customer  `json:"customer"`
	BillingAddress        *address   `json:"billing_address"`
	ShippingAddress       *address   `json:"shipping_address"`
}

type moneySet struct {
	ShopMoney struct {
		Amount       amount `json:"amount"`
		CurrencyCode string `json:"currency_code"`
	} `json:"shop_money"`
}

type refund struct {
	ID           id     `json:"id"`
	OrderID      id     `json:"order_id"`
	CreatedAt    string `json:"created_at"`
	ProcessedAt  string `json:"processed_at"`
	Note         string `json:"note"`
	Transactions []struct {
		Kind     string `json:"kind"`
		Status   string `json:"status"`
		Amount   amount `json:"amount"`
		Currency string `json:"currency"`
	} `json:"transactions"`
	RefundLineItems []struct {
		Quantity    optInt    `json:"quantity"`
		Subtotal    amount    `json:"subtotal"`
		SubtotalSet *moneySet `json:"subtotal_set"`
		LineItem    *lineItem `json:"line_item"`
	} `json:"refund_line_items"`
}

type image struct {
	Src        string `json:"src"`
	VariantIDs []id   `json:"variant_ids"`
}

type product struct {
	ID          id      `json:"id"`
	Title       string  `json:"title"`
	Handle      string  `json:"handle"`
	ProductType string  `json:"product_type"`
	Status      string  `json:"status"`
	CreatedAt   string  `json:"created_at"`
	UpdatedAt   string  `json:"updated_at"`
	Image       *image  `json:"image"`
	Images      []image `json:"images"`
	Variants    []struct {
		ID                id     `json:"id"`
		Title             string `json:"title"`
		Price             amount `json:"price"`
		SKU               string `json:"sku"`
		InventoryItemID   id     `json:"inventory_item_id"`
		InventoryQuantity optInt `json:"inventory_quantity"`
		UpdatedAt         string `json:"updated_at"`
	} `json:"variants"`
}

type inventoryLevel struct {
	InventoryItemID id     `json:"inventory_item_id"`
	LocationID      id     `json:"location_id"`
	Available       optInt `json:"available"`
	UpdatedAt       string `json:"updated_at"`
}

type consentUpdate struct {
	CustomerID            id                `json:"customer_id"`
	EmailAddress          string            `json:"email_address"`
	EmailMarketingConsent *marketingConsent `json:"email_marketing_consent"`
}
