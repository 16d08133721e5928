package sending

import (
	"bytes"
	"context"
	"fmt"
	htmltemplate "html/template"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync"
	texttemplate "text/template"
	"time"

	json "github.com/goccy/go-json"

	"github.com/nudge-email/nudge/behavior"
	"github.com/nudge-email/nudge/config"
	"github.com/nudge-email/nudge/connectors"
	"github.com/nudge-email/nudge/dispatch"
)

// Message args besides connectors.ArgSendID. Custom args are stored by
// SendGrid as non-PII, so they carry ids only.
const (
	ArgRule = "nudge_rule"
	ArgStep = "nudge_step"
)

// Render builds the message a step would send, without the gate and
// without writing anything: what `nudge preview` shows.
func (d *Dispatcher) Render(ctx context.Context, s dispatch.StepSend) (connectors.Message, error) {
	return d.render(ctx, s, SendID(s.Journey.ID, s.Step))
}

func (d *Dispatcher) render(ctx context.Context, s dispatch.StepSend, sendID string) (connectors.Message, error) {
	email := recipient(s.Profile)
	if email == "" {
		return connectors.Message{}, ErrNoRecipient
	}
	data := d.TemplateData(ctx, s, sendID)
	unsub, _ := data["unsubscribe_url"].(string)
	msg := connectors.Message{
		SendID:  sendID,
		To:      connectors.Address{Email: email, Name: headerSafe(s.Profile.FirstName + " " + s.Profile.LastName)},
		From:    d.opts.From,
		ReplyTo: d.opts.ReplyTo,
		Headers: map[string]string{
			// RFC 8058: the https URI answers a POST with this body.
			"List-Unsubscribe":      "<" + unsub + ">",
			"List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
		},
		Tags: []string{s.Rule, "step-" + strconv.Itoa(s.Step)},
		Args: map[string]string{
			connectors.ArgSendID: sendID,
			ArgRule:              s.Rule,
			ArgStep:              strconv.Itoa(s.Step),
		},
		UnsubscribeGroup: d.opts.UnsubscribeGroup,
	}
	spec := s.Send
	if spec.Template != "" {
		msg.TemplateID = spec.Template
		msg.TemplateData = data
		return msg, nil
	}
	if spec.Subject == "" || (spec.HTMLFile == "" && spec.TextFile == "") {
		return connectors.Message{}, fmt.Errorf("%w: step %d of %s has neither a provider template nor a subject with html or text", ErrTemplate, s.Step, s.Rule)
	}
	var err error
	if msg.Subject, err = d.templates.subject(spec.Subject, data); err != nil {
		return connectors.Message{}, err
	}
	msg.Subject = headerSafe(msg.Subject)
	if spec.HTMLFile != "" {
		if msg.HTML, err = d.templates.html(spec.HTMLFile, data); err != nil {
			return connectors.Message{}, err
		}
	}
	if spec.TextFile != "" {
		if msg.Text, err = d.templates.text(spec.TextFile, data); err != nil {
			return connectors.Message{}, err
		}
	}
	return msg, nil
}

// headerSafe makes text from customers and templates fit for a mail
// header: control characters (CR and LF above all, which would let a name
// such as "Eve\r\nBcc: …" inject headers) become spaces, and runs of
// space collapse.
func headerSafe(s string) string {
	return strings.Join(strings.FieldsFunc(s, func(r rune) bool {
		return r < 0x20 || r == 0x7f || r == ' ' || r == '\u2028' || r == '\u2029'
	}), " ")
}

// TemplateData is the data every send gets (CONTRACT §5): customer, items,
// recommendations, recovery_url, unsubscribe_url, store, rule and step,
// with the step's evaluated send.data on top.
func (d *Dispatcher) TemplateData(ctx context.Context, s dispatch.StepSend, sendID string) map[string]any {
	st := d.storeFor(s.Trigger.Store)
	currency := s.Trigger.Currency
	if currency == "" {
		currency = st.Currency
	}
	items := make([]map[string]any, 0, len(s.Trigger.Items))
	for _, it := range s.Trigger.Items {
		item := d.itemData(ctx, it, currency)
		item["url"] = d.safeLink(item["url"].(string), st.URL)
		item["image_url"] = safeImage(item["image_url"].(string))
		items = append(items, item)
	}
	recs := []map[string]any{}
	if d.opts.Recommender != nil && s.Profile.ID != "" {
		// The trigger's own products are already in the message as its
		// items (a cart reminder recommending the cart's product reads
		// as a mistake): ask for enough to leave them out.
		inItems := map[string]bool{}
		for _, it := range s.Trigger.Items {
			if it.ProductID != "" {
				inItems[it.ProductID] = true
			}
		}
		products, err := d.opts.Recommender.Recommend(ctx, s.Profile.ID, recommendationCount+len(inItems))
		if err != nil {
			// Recommendations decorate a message; they must not stop it.
			d.opts.Logger.Warn("recommendations unavailable", "rule", s.Rule, "send_id", sendID, "error", err)
		}
		for _, p := range products {
			if len(recs) == recommendationCount {
				break
			}
			if inItems[p.ProductID] {
				continue
			}
			c := p.Currency
			if c == "" {
				c = currency
			}
			recs = append(recs, map[string]any{
				"product_id": p.ProductID, "title": p.Title, "url": d.safeLink(p.URL, st.URL), "image_url": safeImage(p.ImageURL),
				"price": behavior.FormatMoney(p.Price, c), "quantity": 1,
			})
		}
	}
	email := recipient(s.Profile)
	data := map[string]any{
		"customer": map[string]any{
			"email":      email,
			"first_name": s.Profile.FirstName,
			"last_name":  s.Profile.LastName,
		},
		"items":           items,
		"recommendations": recs,
		"recovery_url":    s.Trigger.Ref(behavior.RefRecoveryURL),
		"unsubscribe_url": d.UnsubscribeURL(email, sendID),
		"store":           map[string]any{"name": st.Name, "url": st.URL},
		"rule":            s.Rule,
		"step":            s.Step,
	}
	for k, v := range s.Send.Data {
		data[k] = v
	}
	return data
}

// itemData shapes one line item, filling title, url and image from the
// catalog when the trigger did not carry them (back_in_stock, price_dropped).
func (d *Dispatcher) itemData(ctx context.Context, it behavior.Item, currency string) map[string]any {
	if it.ProductID != "" && (it.Title == "" || it.URL == "" || it.ImageURL == "") {
		if p, err := d.store.Product(ctx, it.ProductID); err == nil {
			it.Title = firstNonEmpty(it.Title, p.Title)
			it.URL = firstNonEmpty(it.URL, p.URL)
			it.ImageURL = firstNonEmpty(it.ImageURL, p.ImageURL)
		}
	}
	q := it.Quantity
	if q == 0 {
		q = 1
	}
	return map[string]any{
		"product_id": it.ProductID,
		"title":      it.Title,
		"url":        it.URL,
		"image_url":  it.ImageURL,
		"price":      behavior.FormatMoney(it.Price, currency),
		"quantity":   q,
	}
}

func firstNonEmpty(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// storeFor finds a configured store by id, defaulting to the first.
func (d *Dispatcher) storeFor(id string) config.Store {
	for _, s := range d.opts.Stores {
		if s.ID == id {
			return s
		}
	}
	if len(d.opts.Stores) > 0 {
		return d.opts.Stores[0]
	}
	return config.Store{}
}

// templateCache parses local template files once per file version (path,
// modification time and size), so editing a template takes effect without
// a restart and an unchanged one is not re-read per send.
type templateCache struct {
	mu    sync.Mutex
	htmls map[string]cachedHTML
	texts map[string]cachedText
	subjs map[string]*texttemplate.Template
}

type fileVersion struct {
	mod  time.Time
	size int64
}

type cachedHTML struct {
	v fileVersion
	t *htmltemplate.Template
}

type cachedText struct {
	v fileVersion
	t *texttemplate.Template
}

func newTemplateCache() *templateCache {
	return &templateCache{htmls: map[string]cachedHTML{}, texts: map[string]cachedText{}, subjs: map[string]*texttemplate.Template{}}
}

func stat(path string) (fileVersion, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return fileVersion{}, fmt.Errorf("%w: %w", ErrTemplate, err)
	}
	return fileVersion{mod: fi.ModTime(), size: fi.Size()}, nil
}

// html renders an html/template file: values are escaped for their HTML
// context, so markup in a product title cannot break the email.
func (c *templateCache) html(path string, data any) (string, error) {
	v, err := stat(path)
	if err != nil {
		return "", err
	}
	c.mu.Lock()
	e, ok := c.htmls[path]
	c.mu.Unlock()
	if !ok || e.v != v {
		raw, err := os.ReadFile(path)
		if err != nil {
			return "", fmt.Errorf("%w: %w", ErrTemplate, err)
		}
		t, err := htmltemplate.New(path).Parse(string(raw))
		if err != nil {
			return "", fmt.Errorf("%w: %w", ErrTemplate, err)
		}
		e = cachedHTML{v: v, t: t}
		c.mu.Lock()
		c.htmls[path] = e
		c.mu.Unlock()
	}
	var b bytes.Buffer
	if err := e.t.Execute(&b, data); err != nil {
		return "", fmt.Errorf("%w: %w", ErrTemplate, err)
	}
	return b.String(), nil
}

// text renders a text/template file.
func (c *templateCache) text(path string, data any) (string, error) {
	v, err := stat(path)
	if err != nil {
		return "", err
	}
	c.mu.Lock()
	e, ok := c.texts[path]
	c.mu.Unlock()
	if !ok || e.v != v {
		raw, err := os.ReadFile(path)
		if err != nil {
			return "", fmt.Errorf("%w: %w", ErrTemplate, err)
		}
		t, err := texttemplate.New(path).Parse(string(raw))
		if err != nil {
			return "", fmt.Errorf("%w: %w", ErrTemplate, err)
		}
		e = cachedText{v: v, t: t}
		c.mu.Lock()
		c.texts[path] = e
		c.mu.Unlock()
	}
	var b bytes.Buffer
	if err := e.t.Execute(&b, data); err != nil {
		return "", fmt.Errorf("%w: %w", ErrTemplate, err)
	}
	return b.String(), nil
}

// subject renders a subject line (text/template; a header is not HTML).
// Line breaks would end the header, so they become spaces.
func (c *templateCache) subject(src string, data any) (string, error) {
	c.mu.Lock()
	t, ok := c.subjs[src]
	c.mu.Unlock()
	if !ok {
		var err error
		t, err = texttemplate.New("subject").Parse(src)
		if err != nil {
			return "", fmt.Errorf("%w: subject: %w", ErrTemplate, err)
		}
		c.mu.Lock()
		c.subjs[src] = t
		c.mu.Unlock()
	}
	var b bytes.Buffer
	if err := t.Execute(&b, data); err != nil {
		return "", fmt.Errorf("%w: subject: %w", ErrTemplate, err)
	}
	return strings.Join(strings.Fields(b.String()), " "), nil
}

// jsonMarshal encodes without escaping <, > and &, so the stored message
// shows the HTML as it is sent. goccy/go-json, as storage uses: every due
// step renders and encodes a message, and encoding/json's reflection
// took a third of the rendering's CPU.
func jsonMarshal(v any) ([]byte, error) {
	return json.MarshalWithOption(v, json.DisableHTMLEscape())
}

// safeLink returns link when it is an http(s) URL on one of the shop's
// hosts (a configured store's host or a subdomain of it, or a LinkHosts
// entry), else the store's own URL. Products reach emails from the
// tracking API too, whose write key sits in the storefront's HTML: without
// this, anyone could make the shop email its customers a link of theirs.
// An item without a link gets the store's URL, so templates never render
// an empty href.
func (d *Dispatcher) safeLink(link, storeURL string) string {
	u, err := url.Parse(strings.TrimSpace(link))
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.User != nil {
		return storeURL
	}
	host := strings.ToLower(u.Hostname())
	if d.linkHosts[host] {
		return u.String()
	}
	for _, sh := range d.storeHosts {
		if host == sh || strings.HasSuffix(host, "."+sh) || "www."+host == sh {
			return u.String()
		}
	}
	return storeURL
}

// safeImage keeps an http(s) image URL (stores serve images from CDNs
// on other hosts, so the host is not checked) and drops anything else,
// such as javascript: or data: URLs.
func safeImage(link string) string {
	u, err := url.Parse(strings.TrimSpace(link))
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.User != nil {
		return ""
	}
	return u.String()
}
