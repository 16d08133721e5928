package admin

import (
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"fmt"
	"html/template"
	"io/fs"
	"mime"
	"net/http"
	"net/url"
	"path"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/nudge-email/nudge/behavior"
	"github.com/nudge-email/nudge/storage"
)

//go:embed templates/*.html
var templateFS embed.FS

//go:embed static
var staticFS embed.FS

// pageNames are the page templates; each is parsed with layout.html.
func pageNames() []string {
	return []string{"login", "overview", "rules", "customers", "profile", "outbox", "health"}
}

func parsePages(funcs template.FuncMap) (map[string]*template.Template, error) {
	out := map[string]*template.Template{}
	for _, name := range pageNames() {
		t, err := template.New(name).Funcs(funcs).ParseFS(templateFS, "templates/layout.html", "templates/"+name+".html")
		if err != nil {
			return nil, fmt.Errorf("admin: parse %s: %w", name, err)
		}
		out[name] = t
	}
	return out, nil
}

// loadStatic hashes every asset once, so pages can link them with a
// version query and browsers may cache them for a long time.
func loadStatic() (fs.FS, map[string]string, error) {
	sub, err := fs.Sub(staticFS, "static")
	if err != nil {
		return nil, nil, fmt.Errorf("admin: static: %w", err)
	}
	assets := map[string]string{}
	err = fs.WalkDir(sub, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := fs.ReadFile(sub, p)
		if err != nil {
			return err
		}
		sum := sha256.Sum256(b)
		assets[p] = hex.EncodeToString(sum[:6])
		return nil
	})
	if err != nil {
		return nil, nil, fmt.Errorf("admin: static: %w", err)
	}
	return sub, assets, nil
}

func (a *Admin) serveStatic(c *gin.Context) {
	name := strings.TrimPrefix(path.Clean(c.Param("filepath")), "/")
	hash, ok := a.assets[name]
	if !ok {
		c.Data(http.StatusNotFound, "text/plain; charset=utf-8", []byte("not found\n"))
		return
	}
	b, err := fs.ReadFile(a.static, name)
	if err != nil {
		a.fail(c, err)
		return
	}
	etag := `"` + hash + `"`
	c.Header("ETag", etag)
	if c.Query("v") == hash {
		c.Header("Cache-Control", "public, max-age=31536000, immutable")
	} else {
		c.Header("Cache-Control", "no-cache")
	}
	if c.GetHeader("If-None-Match") == etag {
		c.Status(http.StatusNotModified)
		return
	}
	ct := mime.TypeByExtension(path.Ext(name))
	if ct == "" {
		ct = "application/octet-stream"
	}
	c.Data(http.StatusOK, ct, b)
}

func urlEscape(s string) string { return url.QueryEscape(s) }

// profilePath is the profile page of an address.
func profilePath(email string) string { return "/admin/customers/" + url.PathEscape(email) }

func formatFloat(f float64) string {
	switch {
	case f == float64(int64(f)) && f < 1e12 && f > -1e12:
		return strconv.FormatInt(int64(f), 10)
	case f > -1 && f < 1:
		return strconv.FormatFloat(f, 'f', 3, 64)
	default:
		return strconv.FormatFloat(f, 'f', 2, 64)
	}
}

// ago renders a duration for people: "3 min ago", "2 h ago", "5 d ago".
func ago(now, t time.Time) string {
	if t.IsZero() {
		return "never"
	}
	d := now.Sub(t)
	switch {
	case d < 0:
		return "in " + short(-d)
	case d < time.Minute:
		return "just now"
	default:
		return short(d) + " ago"
	}
}

func short(d time.Duration) string {
	switch {
	case d < time.Minute:
		return strconv.Itoa(int(d/time.Second)) + " s"
	case d < time.Hour:
		return strconv.Itoa(int(d/time.Minute)) + " min"
	case d < 48*time.Hour:
		return strconv.Itoa(int(d/time.Hour)) + " h"
	default:
		return strconv.Itoa(int(d/(24*time.Hour))) + " d"
	}
}

func (a *Admin) funcs() template.FuncMap {
	return template.FuncMap{
		"money": behavior.FormatMoney,
		"when": func(t time.Time) string {
			if t.IsZero() {
				return "—"
			}
			return t.UTC().Format("2006-01-02 15:04:05")
		},
		"iso": func(t time.Time) string { return t.UTC().Format(time.RFC3339) },
		"ago": ago,
		"pct": func(f float64) string { return strconv.FormatFloat(f*100, 'f', 1, 64) + "%" },
		"pp": func(f float64) string {
			s := strconv.FormatFloat(f*100, 'f', 1, 64)
			if f > 0 {
				s = "+" + s
			}
			return s + " pp"
		},
		"f1":      func(f float64) string { return strconv.FormatFloat(f, 'f', 1, 64) },
		"profile": profilePath,
		"asset": func(assets map[string]string, name string) string {
			return "/admin/static/" + name + "?v=" + assets[name]
		},
		"items": func(its []behavior.Item) string {
			var parts []string
			for _, it := range its {
				t := it.Title
				if t == "" {
					t = it.ProductID
				}
				if it.Quantity > 1 {
					t += " ×" + strconv.Itoa(it.Quantity)
				}
				parts = append(parts, t)
			}
			return strings.Join(parts, ", ")
		},
		"refs": func(m map[string]string) string {
			keys := make([]string, 0, len(m))
			for k := range m {
				keys = append(keys, k)
			}
			sort.Strings(keys)
			var b strings.Builder
			for i, k := range keys {
				if i > 0 {
					b.WriteString(" ")
				}
				b.WriteString(k + "=" + m[k])
			}
			return b.String()
		},
		"stepName": func(step int) string {
			if step == 0 {
				return "trigger"
			}
			return "step " + strconv.Itoa(step)
		},
		"engagement": func(s storage.Send) []scoreRow {
			var out []scoreRow
			for _, k := range []string{"delivered", "opened", "machine_opened", "clicked", "bounced", "dropped", "spam_reported", "unsubscribed"} {
				if n := s.Engagement[k]; n > 0 {
					out = append(out, scoreRow{Name: strings.ReplaceAll(k, "_", " "), Value: strconv.Itoa(n)})
				}
			}
			return out
		},
		"meta":  func(s storage.Send, k string) string { return s.Meta[k] },
		"count": func(m map[string]int, k string) int { return m[k] },
		"jobs":  func(m map[storage.JobState]int, k storage.JobState) int { return m[k] },
		"has":   func(m map[string]int, k string) bool { return m[k] > 0 },
		"canRetry": func(s storage.Send) bool {
			return s.Status == storage.SendDead
		},
		"canDiscard": func(s storage.Send) bool {
			switch s.Status {
			case storage.SendDead, storage.SendPending, storage.SendRetrying:
				return true
			}
			return false
		},
		"upper": strings.ToUpper,
		"add":   func(a, b int) int { return a + b },
		"mul":   func(a, b int) int { return a * b },
		"bytes": humanBytes,
		"dur": func(d time.Duration) string {
			if d < time.Second {
				return d.Round(100 * time.Microsecond).String()
			}
			return d.Round(10 * time.Millisecond).String()
		},
	}
}

// humanBytes renders a size with a binary unit: "1.6 GiB".
func humanBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return strconv.FormatInt(n, 10) + " B"
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return strconv.FormatFloat(float64(n)/float64(div), 'f', 1, 64) + " " + string("KMGTPE"[exp]) + "iB"
}
