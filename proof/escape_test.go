package proof

import (
	"bufio"
	"bytes"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nudge-email/nudge/connectors"
	"github.com/nudge-email/nudge/connectors/logsender"
)

const escapeRule = `id: escape-probe
description: Renders item titles and the first name, for the escaping test.
trigger:
  event: checkout_started
steps:
  - wait: 1s
    send:
      subject: "Hi {{ .customer.first_name }}, about {{ (index .items 0).title }}"
      html: templates/escape.html
      text: templates/escape.txt
`

const escapeHTML = `<p>Hi {{ .customer.first_name }}</p>{{ range .items }}<p class="item">{{ .title }}</p>{{ end }}`

// TestHostileContentInEmails sends a checkout whose product title is
// HTML and whose customer name carries CR/LF and a fake header through a
// real journey to the log sender: the HTML body must escape the title,
// and no header or subject of the message may hold a line break.
func TestHostileContentInEmails(t *testing.T) {
	const title = `<script>alert(1)</script><img src=x onerror=alert(2)>`
	ip := openInproc(t, confOpts{RulesGlob: "rules/*.yaml", Files: map[string]string{
		"rules/escape.yaml":           escapeRule,
		"rules/templates/escape.html": escapeHTML,
		"rules/templates/escape.txt":  "Hi {{ .customer.first_name }}\n{{ range .items }}{{ .title }}\n{{ end }}",
	}})
	ip.serve(t)
	body, h := mutateShopify(t, "checkouts/create", "escape@example.com", func(m map[string]any) {
		if items, ok := m["line_items"].([]any); ok {
			for _, it := range items {
				if o, ok := it.(map[string]any); ok {
					o["title"] = title
				}
			}
		}
		if c, ok := m["customer"].(map[string]any); ok {
			c["first_name"] = "Eve\r\nBcc: victim@example.com\r\nX-Evil: 1"
		}
		for _, k := range []string{"billing_address", "shipping_address"} {
			if a, ok := m[k].(map[string]any); ok {
				a["first_name"] = "Eve\r\nBcc: victim@example.com"
			}
		}
	})
	if status, answer := post(t.Context(), http.DefaultClient, ip.srv.URL+"/webhooks/shopify/main", body, h); status != http.StatusOK {
		t.Fatalf("checkout: %d %s", status, answer)
	}
	outbox := filepath.Join(ip.dataDir, logsender.OutboxFile)
	var msg connectors.Message
	deadline := time.Now().Add(20 * time.Second)
	for {
		if b, err := os.ReadFile(outbox); err == nil {
			sc := bufio.NewScanner(bytes.NewReader(b))
			sc.Buffer(make([]byte, 1<<20), 1<<24)
			for sc.Scan() {
				_ = json.Unmarshal(sc.Bytes(), &msg)
			}
		}
		if msg.SendID != "" || time.Now().After(deadline) {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if msg.SendID == "" {
		t.Fatal("no message reached the log sender")
	}
	if strings.Contains(msg.HTML, "<script>") || strings.Contains(msg.HTML, "<img src=x") {
		t.Errorf("the product title reached the HTML body unescaped:\n%s", msg.HTML)
	}
	if !strings.Contains(msg.HTML, "&lt;script&gt;") {
		t.Errorf("the escaped title is missing from the HTML body:\n%s", msg.HTML)
	}
	if strings.ContainsAny(msg.Subject, "\r\n") {
		t.Errorf("subject holds a line break: %q", msg.Subject)
	}
	for k, v := range msg.Headers {
		if strings.ContainsAny(k+v, "\r\n") {
			t.Errorf("header %q: %q holds a line break", k, v)
		}
	}
	if strings.ContainsAny(msg.To.Name+msg.To.Email, "\r\n") {
		t.Errorf("recipient holds a line break: %q <%s>", msg.To.Name, msg.To.Email)
	}
	t.Logf("subject %q; to %q <%s>", msg.Subject, msg.To.Name, msg.To.Email)
}
