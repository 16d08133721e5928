package admin

import (
	"context"
	"errors"
	"net/http"
	"sort"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/nudge-email/nudge/behavior"
	"github.com/nudge-email/nudge/storage"
)

// Backtest window of the rules page button.
const backtestWindow = 30 * 24 * time.Hour

// rulesView is the rules page.
type rulesView struct {
	Available bool
	Err       string
	Rules     []ruleRow
	Broken    []RuleInfo // files that failed to load, without a rule id
	Currency  string
	Backtest  *backtestResult
}

type backtestResult struct {
	Rule   string
	Report string
	Err    string
	Took   time.Duration
}

func (a *Admin) rulesView(ctx context.Context) (rulesView, error) {
	o, err := a.overview(ctx)
	if err != nil {
		return rulesView{}, err
	}
	v := rulesView{Available: a.opts.RulesFunc != nil, Err: o.RulesErr, Rules: o.Rules, Currency: o.Currency}
	if a.opts.RulesFunc != nil {
		// Check status is cheap and changes on reload: read it live
		// rather than from the cached overview.
		infos, err := a.opts.RulesFunc(ctx)
		if err != nil {
			v.Err = err.Error()
		}
		live := map[string]*RuleInfo{}
		for i := range infos {
			if infos[i].ID == "" {
				v.Broken = append(v.Broken, infos[i])
				continue
			}
			live[infos[i].ID] = &infos[i]
		}
		rows := make([]ruleRow, 0, len(v.Rules))
		seen := map[string]bool{}
		for _, r := range v.Rules {
			r.Info = live[r.ID]
			seen[r.ID] = true
			rows = append(rows, r)
		}
		for id, info := range live {
			if !seen[id] {
				rows = append(rows, ruleRow{ID: id, Info: info, Stages: stagesOf(&ruleRow{})})
			}
		}
		sort.Slice(rows, func(i, j int) bool { return rows[i].ID < rows[j].ID })
		v.Rules = rows
	}
	return v, nil
}

func (a *Admin) rulesPage(c *gin.Context) {
	v, err := a.rulesView(c.Request.Context())
	if err != nil {
		a.fail(c, err)
		return
	}
	a.render(c, http.StatusOK, "rules", view{Title: "Rules", Nav: "rules", Data: v})
}

func (a *Admin) backtest(c *gin.Context) {
	ctx := c.Request.Context()
	v, err := a.rulesView(ctx)
	if err != nil {
		a.fail(c, err)
		return
	}
	id := c.Param("id")
	res := &backtestResult{Rule: id}
	status := http.StatusOK
	start := time.Now()
	if a.opts.BacktestFunc == nil {
		res.Err, status = "backtest is not available in this build", http.StatusNotImplemented
	} else if res.Report, err = a.opts.BacktestFunc(ctx, id, backtestWindow); err != nil {
		res.Err, status = err.Error(), http.StatusUnprocessableEntity
	}
	res.Took = time.Since(start)
	v.Backtest = res
	a.render(c, status, "rules", view{Title: "Backtest " + id, Nav: "rules", Data: v})
}

// customersView is the search page.
type customersView struct {
	Query   string
	Results []storage.Profile
	Scanned int
	More    bool
}

// maxSearchResults bounds a substring search's answer.
const maxSearchResults = 50

func (a *Admin) customersPage(c *gin.Context) {
	ctx := c.Request.Context()
	q := strings.TrimSpace(c.Query("q"))
	v := customersView{Query: q}
	if q != "" {
		// An exact address goes straight to the profile.
		if p, err := a.opts.Store.ProfileByEmail(ctx, behavior.NormalizeEmail(q)); err == nil {
			c.Redirect(http.StatusSeeOther, profilePath(p.Email))
			return
		} else if !errors.Is(err, storage.ErrNotFound) {
			a.fail(c, err)
			return
		}
		if fullAddress(q) {
			// A complete address that resolves to nobody has no partial
			// matches worth a scan of every profile.
			a.render(c, http.StatusOK, "customers", view{Title: "Customers", Nav: "customers", Data: v})
			return
		}
		release, err := a.search.acquire(ctx)
		if err != nil {
			a.fail(c, err)
			return
		}
		defer release()
		needle := strings.ToLower(q)
		errEnough := errors.New("enough")
		err = a.opts.Store.ScanProfiles(ctx, func(p storage.Profile) error {
			v.Scanned++
			if !profileMatches(p, needle) {
				return nil
			}
			if len(v.Results) == maxSearchResults {
				v.More = true
				return errEnough
			}
			v.Results = append(v.Results, p)
			return nil
		})
		if err != nil && !errors.Is(err, errEnough) {
			a.fail(c, err)
			return
		}
	}
	a.render(c, http.StatusOK, "customers", view{Title: "Customers", Nav: "customers", Data: v})
}

// fullAddress reports a query that is a whole email address rather than
// a fragment of one.
func fullAddress(q string) bool {
	local, domain, ok := strings.Cut(q, "@")
	return ok && local != "" && strings.Contains(domain, ".") && !strings.HasSuffix(domain, ".") && !strings.Contains(domain, "@")
}

func profileMatches(p storage.Profile, needle string) bool {
	if strings.Contains(p.Email, needle) || strings.Contains(strings.ToLower(p.FirstName+" "+p.LastName), needle) {
		return true
	}
	for _, id := range p.Identities {
		if strings.Contains(strings.ToLower(id.Value), needle) {
			return true
		}
	}
	return p.ID == needle
}

// profileView is the profile page.
type profileView struct {
	P               storage.Profile
	Suppressed      *storage.Suppression
	Scores          []scoreRow
	Records         []behavior.Record
	RecordLimit     int
	Decisions       []storage.Decision
	Journeys        []storage.Journey
	Sends           []storage.Send
	Recs            []storage.Product
	RecsAvailable   bool
	RecsErr         string
	Currency        string
	JourneyOfRecord map[string]string
}

type scoreRow struct {
	Name  string
	Value string
}

// profileRecordLimit is how many of the newest records the timeline shows.
const profileRecordLimit = 200

func (a *Admin) profilePage(c *gin.Context) {
	ctx := c.Request.Context()
	email := behavior.NormalizeEmail(c.Param("email"))
	p, err := a.opts.Store.ProfileByEmail(ctx, email)
	if errors.Is(err, storage.ErrNotFound) {
		a.render(c, http.StatusNotFound, "customers", view{Title: "Customers", Nav: "customers", Error: "No customer with that address.", Data: customersView{Query: email}})
		return
	}
	if err != nil {
		a.fail(c, err)
		return
	}
	v := profileView{P: p, RecordLimit: profileRecordLimit, Currency: p.Currency}
	if v.Currency == "" {
		v.Currency = a.opts.Currency
	}
	if v.Records, err = a.opts.Store.RecordsByProfile(ctx, p.ID, storage.RecordQuery{Limit: profileRecordLimit, Newest: true}); err != nil {
		a.fail(c, err)
		return
	}
	if v.Decisions, err = a.opts.Store.Decisions(ctx, p.ID); err != nil {
		a.fail(c, err)
		return
	}
	if v.Journeys, err = a.opts.Store.JourneysByProfile(ctx, p.ID); err != nil {
		a.fail(c, err)
		return
	}
	if v.Sends, err = a.opts.Store.SendsByProfile(ctx, p.ID); err != nil {
		a.fail(c, err)
		return
	}
	if sup, ok, err := a.opts.Store.Suppressed(ctx, p.Email); err != nil {
		a.fail(c, err)
		return
	} else if ok {
		v.Suppressed = &sup
	}
	// Newest first reads best for "what happened lately", in the
	// timeline and in the explain trace alike.
	sort.SliceStable(v.Journeys, func(i, j int) bool { return v.Journeys[i].StartedAt.After(v.Journeys[j].StartedAt) })
	sort.SliceStable(v.Decisions, func(i, j int) bool { return v.Decisions[i].At.After(v.Decisions[j].At) })
	sort.SliceStable(v.Sends, func(i, j int) bool { return v.Sends[i].CreatedAt.After(v.Sends[j].CreatedAt) })
	v.Scores = scoreRows(p.Scores)
	if a.opts.RecommendFunc != nil {
		v.RecsAvailable = true
		if v.Recs, err = a.opts.RecommendFunc(ctx, p.ID, 4); err != nil {
			v.RecsErr = err.Error()
		}
	}
	a.render(c, http.StatusOK, "profile", view{Title: p.Email, Nav: "customers", Data: v})
}

// scoreRows orders scores by name and formats the one that is a time.
func scoreRows(scores map[string]float64) []scoreRow {
	var out []scoreRow
	for k, val := range scores {
		s := formatFloat(val)
		if k == "next_order_at" {
			s = time.Unix(int64(val), 0).UTC().Format("2006-01-02")
		}
		out = append(out, scoreRow{Name: k, Value: s})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// outboxView is the outbox page.
type outboxView struct {
	Status    string // "" = the problem statuses
	Counts    map[string]int
	Sections  []outboxSection
	CanRetry  bool
	CanDrop   bool
	Done, ID  string
	Statuses  []string
	ListLimit int
}

type outboxSection struct {
	Status string
	Sends  []storage.Send
	More   bool
}

// problemStatuses are what the outbox shows by default: sends that have
// not gone out, or whose fate is unclear.
func problemStatuses() []string {
	return []string{storage.SendDead, storage.SendUnknown, storage.SendRetrying, storage.SendPending}
}

func allStatuses() []string {
	return []string{storage.SendDead, storage.SendUnknown, storage.SendRetrying, storage.SendPending,
		storage.SendSending, storage.SendSent, storage.SendHeld, storage.SendSkipped}
}

func (a *Admin) outboxPage(c *gin.Context) {
	a.showOutbox(c, http.StatusOK, "")
}

func (a *Admin) showOutbox(c *gin.Context, status int, errMsg string) {
	ctx := c.Request.Context()
	v := outboxView{
		Status: c.Query("status"), Counts: map[string]int{}, Statuses: allStatuses(),
		CanRetry: a.opts.RetrySendFunc != nil, CanDrop: a.opts.DiscardSendFunc != nil,
		Done: c.Query("done"), ID: c.Query("id"),
	}
	show := problemStatuses()
	limit := 50
	if v.Status != "" {
		show, limit = []string{v.Status}, 500
	}
	v.ListLimit = limit
	for _, st := range show {
		sends, err := a.opts.Store.ListSends(ctx, st, limit+1)
		if err != nil {
			a.fail(c, err)
			return
		}
		sec := outboxSection{Status: st, Sends: sends}
		if len(sends) > limit {
			sec.Sends, sec.More = sends[:limit], true
		}
		v.Sections = append(v.Sections, sec)
	}
	if o, err := a.overview(ctx); err == nil {
		v.Counts = o.Outbox
	}
	a.render(c, status, "outbox", view{Title: "Outbox", Nav: "outbox", Error: errMsg, Data: v})
}

func (a *Admin) sendAction(action string) gin.HandlerFunc {
	return func(c *gin.Context) {
		fn := a.opts.RetrySendFunc
		if action == "discard" {
			fn = a.opts.DiscardSendFunc
		}
		id := c.Param("id")
		if fn == nil {
			a.showOutbox(c, http.StatusNotImplemented, action+" is not available in this build")
			return
		}
		if err := fn(c.Request.Context(), id); err != nil {
			code := http.StatusUnprocessableEntity
			if errors.Is(err, storage.ErrNotFound) {
				code = http.StatusNotFound
			}
			a.showOutbox(c, code, "Could not "+action+" send "+id+": "+err.Error())
			return
		}
		a.cache.invalidate()
		back := c.PostForm("status")
		if back == "" {
			back = storage.SendDead
		}
		q := "status=" + urlEscape(back) + "&done=" + action + "&id=" + urlEscape(id)
		c.Redirect(http.StatusSeeOther, "/admin/outbox?"+q)
	}
}

// healthView is the health page.
type healthView struct {
	Connectors []connectorHealth
	Unlisted   []SourceHealth // sources seen but not configured
	Stats      storage.Stats
	Jobs       map[storage.JobState]int
	JobStates  []storage.JobState
	Window     string
}

type connectorHealth struct {
	ConnectorInfo
	H     SourceHealth
	Spark string
}

func (a *Admin) healthPage(c *gin.Context) {
	ctx := c.Request.Context()
	now := a.opts.Clock.Now()
	snap := a.opts.Health.Snapshot(now)
	by := map[string]SourceHealth{}
	for _, s := range snap {
		by[s.Source] = s
	}
	v := healthView{Window: "24 h", JobStates: []storage.JobState{storage.JobScheduled, storage.JobRunning, storage.JobRetryable, storage.JobDiscarded}}
	used := map[string]bool{}
	for _, ci := range a.opts.Connectors {
		h, ok := by[ci.Source]
		if !ok {
			h = SourceHealth{Source: ci.Source, Counts: map[string]int{}, Hourly: make([]int, 24)}
		}
		used[ci.Source] = true
		v.Connectors = append(v.Connectors, connectorHealth{ConnectorInfo: ci, H: h, Spark: sparkline(h.Hourly, 120, 24)})
	}
	for _, s := range snap {
		if !used[s.Source] {
			v.Unlisted = append(v.Unlisted, s)
		}
	}
	var err error
	if v.Stats, err = a.opts.Store.Stats(ctx); err != nil {
		a.fail(c, err)
		return
	}
	if v.Jobs, err = a.opts.Store.CountJobs(ctx); err != nil {
		a.fail(c, err)
		return
	}
	a.render(c, http.StatusOK, "health", view{Title: "Health", Nav: "health", Data: v})
}
