package server

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"path"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"

	"github.com/gin-gonic/gin"

	"github.com/nudge-email/nudge/behavior"
	"github.com/nudge-email/nudge/storage"
)

func (s *Server) mountAPI(api *gin.RouterGroup) {
	api.GET("/profiles/:email", s.getProfile)
	api.DELETE("/profiles/:email", s.forgetProfile)
	api.GET("/profiles/:email/export", s.exportProfile)
	api.GET("/profiles/:email/explain", s.explainProfile)
	api.GET("/rules", s.hook(func(ctx context.Context, _ *gin.Context) (any, error) {
		if s.opts.Hooks.Rules == nil {
			return nil, errNoHook
		}
		return s.opts.Hooks.Rules(ctx)
	}))
	api.POST("/rules/reload", s.reloadRules)
	api.GET("/sends", s.listSends)
	api.POST("/sends/:id/retry", s.sendAction(func() func(context.Context, string) error { return s.opts.Hooks.RetrySend }))
	api.POST("/sends/:id/discard", s.sendAction(func() func(context.Context, string) error { return s.opts.Hooks.DiscardSend }))
	api.GET("/insights", s.hook(func(ctx context.Context, c *gin.Context) (any, error) {
		if s.opts.Hooks.Insights == nil {
			return nil, errNoHook
		}
		asOf, err := parseAsOf(c.Query("as_of"), s.opts.Clock.Now())
		if err != nil {
			return nil, err
		}
		return s.opts.Hooks.Insights(ctx, asOf)
	}))
	api.POST("/import", s.importRecords)
	api.GET("/suppressions/:email", s.getSuppression)
	api.PUT("/suppressions/:email", s.putSuppression)
	api.DELETE("/suppressions/:email", s.deleteSuppression)
	api.GET("/stats", s.hook(func(ctx context.Context, _ *gin.Context) (any, error) { return s.opts.Store.Stats(ctx) }))
	api.GET("/backup", s.backup)
}

var errNoHook = errors.New("not available in this build")

func (s *Server) hook(fn func(ctx context.Context, c *gin.Context) (any, error)) gin.HandlerFunc {
	return func(c *gin.Context) {
		v, err := fn(c.Request.Context(), c)
		if err != nil {
			s.apiError(c, err)
			return
		}
		c.JSON(http.StatusOK, v)
	}
}

func (s *Server) apiError(c *gin.Context, err error) {
	switch {
	case errors.Is(err, storage.ErrNotFound):
		jsonError(c, http.StatusNotFound, "not found")
	case errors.Is(err, storage.ErrInvalid):
		jsonError(c, http.StatusBadRequest, err.Error())
	case errors.Is(err, errNoHook):
		jsonError(c, http.StatusNotImplemented, err.Error())
	default:
		s.opts.Logger.Error("api error", "route", c.FullPath(), "error", err)
		jsonError(c, http.StatusInternalServerError, err.Error())
	}
}

// RecordView is a record as the profile API shows it.
type RecordView struct {
	behavior.Record
}

// JourneyView is the contract's journey shape plus its trace.
type JourneyView struct {
	ID      string               `json:"id"`
	Rule    string               `json:"rule"`
	Step    int                  `json:"step"`
	Status  string               `json:"status"`
	Reason  string               `json:"reason,omitempty"`
	DueAt   *time.Time           `json:"due_at"`
	Holdout bool                 `json:"holdout,omitempty"`
	Started time.Time            `json:"started_at"`
	Trace   []storage.TraceEntry `json:"trace,omitempty"`
}

// SendView is the contract's send shape.
type SendView struct {
	ID         string         `json:"id"`
	Rule       string         `json:"rule"`
	Step       int            `json:"step"`
	Provider   string         `json:"provider"`
	Status     string         `json:"status"`
	At         time.Time      `json:"at"`
	Reason     string         `json:"reason,omitempty"`
	LastError  string         `json:"last_error,omitempty"`
	Engagement map[string]int `json:"engagement,omitempty"`
}

// ProfileView is GET /api/v1/profiles/{email} (CONTRACT §3).
type ProfileView struct {
	ID              string               `json:"id"`
	Email           string               `json:"email"`
	FirstName       string               `json:"first_name,omitempty"`
	LastName        string               `json:"last_name,omitempty"`
	Identities      []behavior.Identity  `json:"identities"`
	Consent         storage.ConsentState `json:"consent"`
	Suppressed      *storage.Suppression `json:"suppressed,omitempty"`
	Timezone        string               `json:"timezone"`
	Segment         string               `json:"segment,omitempty"`
	Scores          map[string]any       `json:"scores"`
	OrdersCount     int                  `json:"orders_count"`
	TotalSpent      int64                `json:"total_spent"`
	FirstSeen       time.Time            `json:"first_seen"`
	LastSeen        time.Time            `json:"last_seen"`
	Records         []behavior.Record    `json:"records"`
	Journeys        []JourneyView        `json:"journeys"`
	Sends           []SendView           `json:"sends"`
	Recommendations any                  `json:"recommendations"`
}

func (s *Server) lookup(c *gin.Context) (storage.Profile, bool) {
	email := behavior.NormalizeEmail(c.Param("email"))
	p, err := s.opts.Store.ProfileByEmail(c.Request.Context(), email)
	if err != nil {
		if errors.Is(err, storage.ErrNotFound) {
			jsonError(c, http.StatusNotFound, "no profile for that email")
		} else {
			s.apiError(c, err)
		}
		return storage.Profile{}, false
	}
	return p, true
}

func (s *Server) getProfile(c *gin.Context) {
	p, ok := s.lookup(c)
	if !ok {
		return
	}
	limit := 500
	if v, err := strconv.Atoi(c.Query("limit")); err == nil && v > 0 {
		limit = v
	}
	v, err := BuildProfileView(c.Request.Context(), s.opts.Store, p, limit)
	if err != nil {
		s.apiError(c, err)
		return
	}
	if s.opts.Hooks.Recommend != nil {
		if recs, err := s.opts.Hooks.Recommend(c.Request.Context(), p.ID, 4); err == nil && recs != nil {
			v.Recommendations = recs
		}
	}
	c.JSON(http.StatusOK, v)
}

// BuildProfileView assembles the profile API answer from the store; the
// CLI uses it too when no server runs. Records are the newest limit, in
// time order.
func BuildProfileView(ctx context.Context, st storage.Store, p storage.Profile, limit int) (ProfileView, error) {
	recs, err := st.RecordsByProfile(ctx, p.ID, storage.RecordQuery{Limit: limit, Newest: true})
	if err != nil {
		return ProfileView{}, err
	}
	for i, j := 0, len(recs)-1; i < j; i, j = i+1, j-1 {
		recs[i], recs[j] = recs[j], recs[i]
	}
	js, err := st.JourneysByProfile(ctx, p.ID)
	if err != nil {
		return ProfileView{}, err
	}
	sends, err := st.SendsByProfile(ctx, p.ID)
	if err != nil {
		return ProfileView{}, err
	}
	v := ProfileView{
		ID: p.ID, Email: p.Email, FirstName: p.FirstName, LastName: p.LastName,
		Identities: p.Identities, Consent: p.Consent, Timezone: p.Zone(), Segment: p.Segment,
		Scores: map[string]any{}, OrdersCount: p.OrdersCount, TotalSpent: p.TotalSpent,
		FirstSeen: p.FirstSeen, LastSeen: p.LastSeen,
		Records: recs, Journeys: []JourneyView{}, Sends: []SendView{}, Recommendations: []any{},
	}
	if v.Records == nil {
		v.Records = []behavior.Record{}
	}
	if v.Identities == nil {
		v.Identities = []behavior.Identity{}
	}
	for k, val := range p.Scores {
		if k == "next_order_at" {
			v.Scores[k] = time.Unix(int64(val), 0).UTC()
			continue
		}
		v.Scores[k] = val
	}
	if sup, ok, err := st.Suppressed(ctx, p.Email); err == nil && ok {
		v.Suppressed = &sup
	}
	for _, j := range js {
		jv := JourneyView{ID: j.ID, Rule: j.Rule, Step: j.Step, Status: j.Status, Reason: j.Reason, Holdout: j.Holdout, Started: j.StartedAt, Trace: j.Trace}
		if j.Active() && !j.DueAt.IsZero() {
			d := j.DueAt
			jv.DueAt = &d
		}
		v.Journeys = append(v.Journeys, jv)
	}
	for _, sd := range sends {
		at := sd.CreatedAt
		if !sd.SentAt.IsZero() {
			at = sd.SentAt
		}
		v.Sends = append(v.Sends, SendView{ID: sd.ID, Rule: sd.Rule, Step: sd.Step, Provider: sd.Provider, Status: sd.Status, At: at, Reason: sd.Reason, LastError: sd.LastError, Engagement: sd.Engagement})
	}
	return v, nil
}

func (s *Server) forgetProfile(c *gin.Context) {
	p, ok := s.lookup(c)
	if !ok {
		return
	}
	forget := func(ctx context.Context, p storage.Profile) error { return s.opts.Store.Forget(ctx, p.ID) }
	if s.opts.Hooks.Forget != nil {
		forget = s.opts.Hooks.Forget
	}
	if err := forget(c.Request.Context(), p); err != nil {
		s.apiError(c, err)
		return
	}
	c.JSON(http.StatusOK, gin.H{"status": "forgotten", "profile_id": p.ID})
}

// Export is everything held about one person.
type Export struct {
	Profile     storage.Profile      `json:"profile"`
	Records     []behavior.Record    `json:"records"`
	Journeys    []storage.Journey    `json:"journeys"`
	Decisions   []storage.Decision   `json:"decisions"`
	Sends       []storage.Send       `json:"sends"`
	Suppression *storage.Suppression `json:"suppression,omitempty"`
	// Deliveries are the raw webhook bodies kept about the person: the
	// ones Forget erases with them (storage.DB.ExportDeliveries).
	Deliveries []DeliveryView `json:"deliveries"`
	ExportedAt time.Time      `json:"exported_at"`
}

// DeliveryView is one raw webhook delivery in an export. Body is the
// payload as received, as JSON when it is JSON (else a string); of a batch
// of several people's events (a SendGrid events post) only this person's
// events are kept, as storage.DB.ExportDeliveries explains.
type DeliveryView struct {
	ID         string    `json:"id"`
	Source     string    `json:"source"`
	Store      string    `json:"store"`
	Topic      string    `json:"topic"`
	ReceivedAt time.Time `json:"received_at"`
	Body       any       `json:"body"` // json.RawMessage or string
}

// BuildExport gathers everything held about a profile.
func BuildExport(ctx context.Context, st storage.Store, p storage.Profile, now time.Time) (Export, error) {
	e := Export{Profile: p, ExportedAt: now}
	var err error
	if e.Records, err = st.RecordsByProfile(ctx, p.ID, storage.RecordQuery{}); err != nil {
		return e, err
	}
	if e.Journeys, err = st.JourneysByProfile(ctx, p.ID); err != nil {
		return e, err
	}
	if e.Decisions, err = st.Decisions(ctx, p.ID); err != nil {
		return e, err
	}
	if e.Sends, err = st.SendsByProfile(ctx, p.ID); err != nil {
		return e, err
	}
	for _, id := range p.Identities {
		if id.Type != behavior.IdentEmail {
			continue
		}
		if sup, ok, err := st.Suppressed(ctx, id.Value); err != nil {
			return e, err
		} else if ok {
			e.Suppression = &sup
		}
	}
	de, ok := st.(storage.DeliveryExporter)
	if !ok {
		return e, fmt.Errorf("export: store %T cannot list raw deliveries", st)
	}
	ds, err := de.ExportDeliveries(ctx, p.ID)
	if err != nil {
		return e, err
	}
	e.Deliveries = make([]DeliveryView, 0, len(ds))
	for _, d := range ds {
		e.Deliveries = append(e.Deliveries, DeliveryView{ID: d.ID, Source: d.Source, Store: d.Store, Topic: d.Topic, ReceivedAt: d.ReceivedAt, Body: storage.ExportBody(d.Body)})
	}
	return e, nil
}

func (s *Server) exportProfile(c *gin.Context) {
	p, ok := s.lookup(c)
	if !ok {
		return
	}
	e, err := BuildExport(c.Request.Context(), s.opts.Store, p, s.opts.Clock.Now())
	if err != nil {
		s.apiError(c, err)
		return
	}
	c.Header("Content-Disposition", `attachment; filename="nudge-export.json"`)
	c.JSON(http.StatusOK, e)
}

func (s *Server) explainProfile(c *gin.Context) {
	if s.opts.Hooks.Explain == nil {
		s.apiError(c, errNoHook)
		return
	}
	p, ok := s.lookup(c)
	if !ok {
		return
	}
	v, err := s.opts.Hooks.Explain(c.Request.Context(), p.ID, c.Query("rule"))
	if err != nil {
		s.apiError(c, err)
		return
	}
	c.JSON(http.StatusOK, v)
}

func (s *Server) reloadRules(c *gin.Context) {
	if s.opts.Hooks.ReloadRules == nil {
		s.apiError(c, errNoHook)
		return
	}
	if err := s.opts.Hooks.ReloadRules(c.Request.Context()); err != nil {
		c.JSON(http.StatusUnprocessableEntity, gin.H{"error": "rules not reloaded; the previous set stays active", "errors": strings.Split(err.Error(), "\n")})
		return
	}
	c.JSON(http.StatusOK, gin.H{"status": "reloaded"})
}

func (s *Server) listSends(c *gin.Context) {
	limit := 200
	if v, err := strconv.Atoi(c.Query("limit")); err == nil && v > 0 {
		limit = v
	}
	status := c.Query("status")
	if status != "" && !slices.Contains(storage.SendStatuses(), status) {
		jsonError(c, http.StatusBadRequest, fmt.Sprintf("unknown status %q (one of %s)", status, strings.Join(storage.SendStatuses(), ", ")))
		return
	}
	sends, err := s.opts.Store.ListSends(c.Request.Context(), status, limit)
	if err != nil {
		s.apiError(c, err)
		return
	}
	if sends == nil {
		sends = []storage.Send{}
	}
	c.JSON(http.StatusOK, gin.H{"sends": sends})
}

func (s *Server) sendAction(get func() func(context.Context, string) error) gin.HandlerFunc {
	return func(c *gin.Context) {
		fn := get()
		if fn == nil {
			s.apiError(c, errNoHook)
			return
		}
		if err := fn(c.Request.Context(), c.Param("id")); err != nil {
			s.apiError(c, err)
			return
		}
		c.JSON(http.StatusOK, gin.H{"status": "ok"})
	}
}

func (s *Server) importRecords(c *gin.Context) {
	if s.opts.Hooks.Import == nil {
		s.apiError(c, errNoHook)
		return
	}
	// Imports are larger than webhooks: allow 64× the webhook limit.
	c.Request.Body = http.MaxBytesReader(c.Writer, c.Request.Body, s.opts.MaxBodyBytes*64)
	req := ImportRequest{File: importName(c.Query("file")), FirstLine: 1, Format: c.Query("format"), Store: c.Query("store")}
	if l := c.Query("line"); l != "" {
		n, err := strconv.Atoi(l)
		if err != nil || n < 1 {
			jsonError(c, http.StatusBadRequest, "line must be a positive line number")
			return
		}
		req.FirstLine = n
	}
	v, err := s.opts.Hooks.Import(c.Request.Context(), req, c.Request.Body)
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			jsonError(c, http.StatusRequestEntityTooLarge, "body over the limit; use nudge import for large files")
			return
		}
		s.apiError(c, err)
		return
	}
	c.JSON(http.StatusOK, v)
}

func (s *Server) getSuppression(c *gin.Context) {
	sup, ok, err := s.opts.Store.Suppressed(c.Request.Context(), behavior.NormalizeEmail(c.Param("email")))
	if err != nil {
		s.apiError(c, err)
		return
	}
	if !ok {
		jsonError(c, http.StatusNotFound, "not suppressed")
		return
	}
	c.JSON(http.StatusOK, sup)
}

func (s *Server) putSuppression(c *gin.Context) {
	email := behavior.NormalizeEmail(c.Param("email"))
	if !strings.Contains(email, "@") {
		jsonError(c, http.StatusBadRequest, "not an email address")
		return
	}
	sup := storage.Suppression{Email: email, Reason: behavior.SuppressManual, Source: "api", At: s.opts.Clock.Now().UTC()}
	if err := s.opts.Store.Suppress(c.Request.Context(), sup); err != nil {
		s.apiError(c, err)
		return
	}
	c.JSON(http.StatusOK, sup)
}

func (s *Server) deleteSuppression(c *gin.Context) {
	if err := s.opts.Store.Unsuppress(c.Request.Context(), behavior.NormalizeEmail(c.Param("email"))); err != nil {
		s.apiError(c, err)
		return
	}
	c.JSON(http.StatusOK, gin.H{"status": "removed"})
}

// backup streams a consistent snapshot of the store.
func (s *Server) backup(c *gin.Context) {
	c.Header("Content-Type", "application/octet-stream")
	c.Header("Content-Disposition", `attachment; filename="nudge-backup.db"`)
	c.Status(http.StatusOK)
	if _, err := s.opts.Store.Backup(c.Request.Context(), c.Writer); err != nil {
		s.opts.Logger.Error("backup failed", "error", err)
		// Headers are gone; abort the connection so the client sees a
		// truncated body rather than a "complete" broken file.
		panic(http.ErrAbortHandler)
	}
}

// importName is the label of an import's report: the client's file name
// (?file=, as `nudge import` sends it) reduced to a short printable base
// name, else "request".
func importName(file string) string {
	file = path.Base(strings.ReplaceAll(file, "\\", "/"))
	if file == "." || file == "/" || len(file) > 200 || strings.IndexFunc(file, func(r rune) bool { return !unicode.IsPrint(r) }) >= 0 {
		return "request"
	}
	return file
}

// parseAsOf reads ?as_of= of GET /api/v1/insights: "" for the live fit,
// "now", a date (YYYY-MM-DD, midnight UTC) or an RFC 3339 time for a fit
// made on request, as `nudge insights [--as-of DATE]` makes it.
func parseAsOf(v string, now time.Time) (time.Time, error) {
	switch v {
	case "":
		return time.Time{}, nil
	case "now":
		return now.UTC(), nil
	}
	if t, err := time.Parse("2006-01-02", v); err == nil {
		return t, nil
	}
	if t, err := time.Parse(time.RFC3339, v); err == nil {
		return t.UTC(), nil
	}
	return time.Time{}, fmt.Errorf("%w: as_of %q: want now, YYYY-MM-DD or RFC 3339", storage.ErrInvalid, v)
}
