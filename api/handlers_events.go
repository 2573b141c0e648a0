package api

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"mime"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/offsite-gw/offsite/api/auth"
	"github.com/offsite-gw/offsite/devices"
	"github.com/offsite-gw/offsite/events"
	"github.com/offsite-gw/offsite/events/event"
	"github.com/offsite-gw/offsite/internal/errs"
)

// Defaults of the event routes.
const (
	DefaultHeartbeat     = 15 * time.Second
	DefaultEvidenceLimit = 16 << 20
	// sseWriteTimeout bounds one write to an SSE client, so a client that stopped reading
	// cannot hold a goroutine (or Shutdown) for ever.
	sseWriteTimeout = 30 * time.Second
)

// typeVisible reports whether role may see events (and alerts opened by events) of type t:
// maintainers see device health only (events.IsDeviceHealth); scope is checked separately.
func typeVisible(role auth.Role, t string) bool {
	return role != auth.RoleMaintainer || events.IsDeviceHealth(t)
}

type eventMetrics struct {
	rejected *prometheus.CounterVec
	streams  prometheus.Gauge
}

func newEventMetrics(reg prometheus.Registerer) (*eventMetrics, error) {
	m := &eventMetrics{
		rejected: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "offsite_api_events_rejected_total",
			Help: "Events refused by POST /api/v1/events, by error code.",
		}, []string{"code"}),
		streams: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "offsite_api_event_streams",
			Help: "Open Server-Sent Events streams (GET /api/v1/events/stream).",
		}),
	}
	var err error
	if m.rejected, err = register(reg, m.rejected); err != nil {
		return nil, err
	}
	if m.streams, err = register(reg, m.streams); err != nil {
		return nil, err
	}
	return m, nil
}

// eventRoutes registers the routes of the components that are set: the event log (with its
// live stream), alerts and evidence files.
func (s *Server) eventRoutes(r fiber.Router) {
	read := s.Require(auth.PermEventsRead)
	if s.Events != nil {
		if s.Feed == nil {
			s.Feed = &events.Feed{Log: s.Events, Logger: s.Logger}
		}
		r.Get("/events", read, s.listEvents)
		r.Post("/events", s.Require(auth.PermEventsWrite), s.postEvent)
		r.Get("/events/stream", read, s.streamEvents)
	}
	if s.Alerts != nil {
		r.Get("/alerts", read, s.listAlerts)
		r.Get("/alerts/outcomes", read, s.listOutcomes)
		r.Get("/alerts/:id", read, s.getAlert)
		act := s.Require(auth.PermAlertsAct)
		for _, a := range []string{"claim", "handle", "feedback", "close"} {
			r.Post("/alerts/:id/"+a, act, s.alertAction(a))
		}
	}
	if s.Evidence != nil {
		r.Post("/evidence", s.Require(auth.PermEvidenceWrite), s.postEvidence)
		r.Get("/evidence/:a/:b/:file", read, s.getEvidence)
	}
}

// componentEnabled says whether the optional component named in the OpenAPI document
// (x-offsite-component) is served, so the document describes exactly what is served.
func (s *Server) componentEnabled(name string) bool {
	switch name {
	case "events":
		return s.Events != nil
	case "alerts":
		return s.Alerts != nil
	case "evidence":
		return s.Evidence != nil
	case "evidence_peers":
		return s.Evidence != nil && s.EvidenceGate != nil && s.Events != nil
	case "uplinks":
		return s.Uplinks != nil
	case "telemetry":
		return s.Telemetry != nil
	case "presence":
		return s.Presence != nil
	case "quarantine":
		return s.Quarantine != nil
	case "cameras":
		return s.Cameras != nil
	case "video":
		return s.Video != nil
	case "analytics":
		return s.Leases != nil
	case "gateways":
		return s.Gateways != nil
	case "rtsp_consumers":
		return s.RTSPConsumers != nil
	case "rate_limits":
		return s.RateLimits != nil
	case "recordings":
		return s.Recorder != nil
	case "recording_peers":
		return s.Recorder != nil && s.RecordingGate != nil
	}
	return true
}

// postEvent logs one event from a producer (analytics worker, tool). A body that is not a
// valid event is refused, counted and logged; it never stops the server.
func (s *Server) postEvent(c *fiber.Ctx) error {
	if err := requireJSON(c); err != nil {
		return err
	}
	ctx := c.UserContext()
	e, err := events.ParseEvent(c.Body())
	if err == nil {
		err = s.enrich(ctx, &e)
	}
	var out []event.Event
	if err == nil {
		out, err = s.Events.Append(ctx, e)
	}
	if err != nil {
		k := errs.KindOf(err)
		if k != errs.KindInvalid && k != errs.KindConflict {
			return err
		}
		code := errs.CodeOf(err)
		s.eventMetrics.rejected.WithLabelValues(code).Inc()
		Logger(c).Warn("event refused", "code", code, "err", err, "body_bytes", len(c.Body()), "body", excerpt(c.Body(), 256))
		return errs.E(k, code, "%s", err.Error()) // with the cause: which field, what is wrong
	}
	c.Status(fiber.StatusCreated)
	c.Set(fiber.HeaderContentType, fiber.MIMEApplicationJSONCharsetUTF8)
	return c.Send(out[0].Raw)
}

func requireJSON(c *fiber.Ctx) error {
	if ct := c.Get(fiber.HeaderContentType); ct != "" {
		mt, _, err := mime.ParseMediaType(ct)
		if err != nil || (mt != fiber.MIMEApplicationJSON && !strings.HasSuffix(mt, "+json")) {
			return fiber.NewError(fiber.StatusUnsupportedMediaType, "send the body as application/json")
		}
	}
	return nil
}

// enrich fills the event from the registry; a device or site that is not registered is the
// producer's mistake (400), not a missing resource of this URL.
func (s *Server) enrich(ctx context.Context, e *event.Event) error {
	var dir events.Directory = s.Devices
	if s.Gateways != nil {
		dir = withChildren{local: s.Devices, gateways: s.Gateways}
	}
	err := events.Enrich(ctx, dir, e)
	if errs.Is(err, errs.KindNotFound) {
		return errs.Wrap(errs.KindInvalid, errs.CodeOf(err), err, "event %s names an unregistered device or site", e.Type)
	}
	return err
}

func excerpt(b []byte, n int) string {
	if len(b) > n {
		b = b[:n]
	}
	return strings.ToValidUTF8(string(b), "\uFFFD")
}

// parseTypes reads ?type=: exact types or prefixes ending in ".", comma separated.
func parseTypes(q string) ([]string, error) {
	if q == "" {
		return nil, nil
	}
	var out []string
	for _, t := range strings.Split(q, ",") {
		t = strings.TrimSpace(t)
		if t == "" || len(t) > 64 || len(out) >= 20 {
			return nil, errs.E(errs.KindInvalid, "invalid_type", "type must be up to 20 comma-separated event types or prefixes ending in \".\" (e.g. sensor.threshold,video.)")
		}
		out = append(out, t)
	}
	return out, nil
}

// parseSince turns ?since= (an event id or a seq from "next") into a seq.
func (s *Server) parseSince(ctx context.Context, v string) (int64, error) {
	v = strings.TrimSpace(v)
	switch {
	case v == "":
		return 0, nil
	case isDigits(v) && len(v) <= 18:
		return strconv.ParseInt(v, 10, 64)
	case len(v) == 26:
		return s.Events.SeqOf(ctx, strings.ToUpper(v))
	}
	return 0, errs.E(errs.KindInvalid, "invalid_since", "since must be an event id or the next value of an earlier answer")
}

// EventsPage is the answer of GET /api/v1/events: events in log order; pass Next as since
// to continue.
type EventsPage struct {
	Events []json.RawMessage `json:"events"`
	Next   string            `json:"next"`
}

func (s *Server) listEvents(c *fiber.Ctx) error {
	ctx := c.UserContext()
	u, _ := UserOf(c)
	after, err := s.parseSince(ctx, c.Query("since"))
	if err != nil {
		return err
	}
	types, err := parseTypes(c.Query("type"))
	if err != nil {
		return err
	}
	limit, err := ParseLimit(c.Query("limit"), 100, 5000)
	if err != nil {
		return err
	}
	reader := alertReader(u)
	f := events.Filter{Types: types, Device: c.Query("device"), Scope: reader.Scope}
	evs, through, err := s.Events.Scan(ctx, after, f, limit)
	if err != nil {
		return err
	}
	page := EventsPage{Events: make([]json.RawMessage, 0, len(evs)), Next: strconv.FormatInt(through, 10)}
	for _, e := range evs {
		if eventVisible(u, reader, &e) {
			page.Events = append(page.Events, e.Raw)
		}
	}
	return c.JSON(page)
}

// streamEvents serves Server-Sent Events natively on fasthttp (an adaptor would buffer the
// whole response): one Feed subscription per client, resumable with Last-Event-ID, ended
// by a failed write (client gone) or Shutdown.
func (s *Server) streamEvents(c *fiber.Ctx) error {
	ctx := c.UserContext()
	u, _ := UserOf(c)
	last := strings.TrimSpace(c.Get("Last-Event-ID"))
	if last == "" {
		last = strings.TrimSpace(c.Query("last_event_id"))
	}
	var start int64
	if last == "" {
		start, _ = s.Events.Head()
	} else {
		if len(last) != 26 {
			return errs.E(errs.KindInvalid, "invalid_last_event_id", "Last-Event-ID %q is not an event id", excerpt([]byte(last), 40))
		}
		var err error
		if start, err = s.Events.SeqOf(ctx, strings.ToUpper(last)); err != nil {
			return err // not found: the client cannot resume and must reload instead of missing events
		}
	}
	types, err := parseTypes(c.Query("type"))
	if err != nil {
		return err
	}
	reader := alertReader(u)
	scoped := events.ScopeFilter(reader.Scope, events.Filter{Types: types})
	match := func(e *event.Event) bool { return eventVisible(u, reader, e) && scoped(e) }

	s.streamMu.Lock()
	if s.closing {
		s.streamMu.Unlock()
		return errs.E(errs.KindUnavailable, "shutting_down", "the gateway is shutting down; reconnect in a moment")
	}
	s.streamWG.Add(1)
	s.streamMu.Unlock()
	sctx, cancel := context.WithCancel(s.streams)
	ch := s.Feed.Subscribe(sctx, start, match)
	conn := c.Context().Conn()
	log := Logger(c)

	c.Set(fiber.HeaderContentType, "text/event-stream")
	c.Set(fiber.HeaderCacheControl, "no-store")
	c.Set("X-Accel-Buffering", "no") // nginx: do not buffer
	c.Status(fiber.StatusOK)
	// The writer runs after the handler returned: it must not touch c.
	c.Context().SetBodyStreamWriter(func(w *bufio.Writer) {
		defer s.streamWG.Done()
		defer cancel()
		s.eventMetrics.streams.Inc()
		defer s.eventMetrics.streams.Dec()
		began := time.Now()
		n, why := s.writeSSE(sctx, w, ch, conn)
		_ = conn.SetWriteDeadline(time.Time{}) // the connection may serve further requests
		log.Info("event stream ended", "events", n, "reason", why, "duration_s", time.Since(began).Seconds())
	})
	return nil
}

// deadliner is the part of net.Conn the stream needs.
type deadliner interface{ SetWriteDeadline(time.Time) error }

// writeSSE writes frames until the subscription ends, the context is cancelled or a write
// fails. It returns how many events it wrote and why it stopped.
func (s *Server) writeSSE(ctx context.Context, w *bufio.Writer, ch <-chan event.Event, conn deadliner) (int, string) {
	flush := func() error {
		_ = conn.SetWriteDeadline(time.Now().Add(sseWriteTimeout))
		return w.Flush()
	}
	n := 0
	if _, err := w.WriteString("retry: 2000\n\n"); err != nil {
		return n, "client gone"
	}
	if err := flush(); err != nil { // sends the headers now
		return n, "client gone"
	}
	t := time.NewTicker(orDefault(s.Heartbeat, DefaultHeartbeat))
	defer t.Stop()
	for {
		select {
		case e, ok := <-ch:
			if !ok {
				return n, "shutdown"
			}
			writeFrame(w, &e)
			n++
		batch: // whatever is already waiting goes in the same write
			for w.Buffered() < 64<<10 {
				select {
				case e, ok := <-ch:
					if !ok {
						break batch
					}
					writeFrame(w, &e)
					n++
				default:
					break batch
				}
			}
			if err := flush(); err != nil {
				return n, "client gone"
			}
		case <-t.C:
			_, _ = w.WriteString(": keep-alive\n\n")
			if err := flush(); err != nil {
				return n, "client gone"
			}
		case <-ctx.Done():
			return n, "shutdown"
		}
	}
}

// writeFrame writes one event; Raw is compact JSON, so it fits one data: line. Write errors
// stick in w and surface at the next Flush.
func writeFrame(w *bufio.Writer, e *event.Event) {
	_, _ = w.WriteString("id: ")
	_, _ = w.WriteString(e.ID)
	_, _ = w.WriteString("\nevent: ")
	_, _ = w.WriteString(e.Type)
	_, _ = w.WriteString("\ndata: ")
	_, _ = w.Write(e.Raw)
	_, _ = w.WriteString("\n\n")
}

func (s *Server) listAlerts(c *fiber.Ctx) error {
	u, _ := UserOf(c)
	state := c.Query("state")
	if state != "" && !slices.Contains(events.AlertStates, state) {
		return errs.E(errs.KindInvalid, "invalid_state", "state must be one of %s", strings.Join(events.AlertStates, ", "))
	}
	var severities []string
	if q := c.Query("severity"); q != "" {
		for _, v := range strings.Split(q, ",") {
			v = strings.TrimSpace(v)
			if event.SeverityRank(v) < 0 {
				return errs.E(errs.KindInvalid, "invalid_severity", "severity must be one or more of %s, comma separated", strings.Join(event.Severities, ", "))
			}
			severities = append(severities, v)
		}
	}
	limit, err := ParseLimit(c.Query("limit"), 200, 5000)
	if err != nil {
		return err
	}
	reader := alertReader(u)
	f := events.AlertFilter{State: state, Limit: limit + 1, Audiences: reader.Audiences()} // one more: is there more?
	if len(severities) > 0 {
		f.Limit = 5000 // filtered here, then cut to limit
	}
	list, err := s.Alerts.List(c.UserContext(), reader.Scope, f)
	if err != nil {
		return err
	}
	out := make([]events.Alert, 0, min(len(list), limit))
	more := false
	for _, al := range list {
		if len(severities) > 0 && !slices.Contains(severities, al.Severity) {
			continue
		}
		if len(out) == limit {
			more = true // a list cut at its limit says so
			break
		}
		out = append(out, al)
	}
	return c.JSON(fiber.Map{"alerts": out, "limit": limit, "more": more})
}

func (s *Server) getAlert(c *fiber.Ctx) error {
	u, _ := UserOf(c)
	id := c.Params("id")
	reader := alertReader(u)
	al, err := s.Alerts.Get(c.UserContext(), reader.Scope, id)
	if err != nil {
		return err
	}
	if !reader.Reads(al.Audience, al.Type) {
		return errs.E(errs.KindNotFound, "alert_not_found", "no alert %s", id)
	}
	detail, err := s.alertWithClips(c, al)
	if err != nil {
		return err
	}
	return c.JSON(detail)
}

// AlertActionRequest is the body of POST /api/v1/alerts/{id}/claim|handle|feedback|close.
// Outcome (code or Chinese label) is for feedback only; attachments are evidence sha256s.
type AlertActionRequest struct {
	Note        string   `json:"note"`
	Outcome     string   `json:"outcome"`
	Attachments []string `json:"attachments"`
}

func (s *Server) alertAction(action string) fiber.Handler {
	do := map[string]func(context.Context, devices.Scope, string, events.Action) (events.Alert, error){
		"claim": s.Alerts.Claim, "handle": s.Alerts.Handle, "feedback": s.Alerts.Feedback, "close": s.Alerts.Close,
	}[action]
	return func(c *fiber.Ctx) error {
		u, _ := UserOf(c)
		id := c.Params("id")
		var req AlertActionRequest
		if len(bytes.TrimSpace(c.Body())) > 0 {
			if err := DecodeJSON(c, &req); err != nil {
				return err
			}
		}
		var al events.Alert
		err := s.checkAttachments(req.Attachments)
		if err == nil {
			err = s.checkAudience(c, u, id)
		}
		if err == nil {
			al, err = do(c.UserContext(), u.Scope(), id, events.Action{Actor: u.Username, Note: req.Note,
				Attachments: req.Attachments, Outcome: req.Outcome, Override: u.Role == auth.RoleAdmin})
		}
		detail := al.Outcome
		if action != "feedback" {
			detail = ""
		}
		if len(req.Attachments) > 0 {
			detail = strings.TrimSpace(detail + " attachments=" + strconv.Itoa(len(req.Attachments)))
		}
		s.Record(c, "alert."+action, id, err, detail)
		if err != nil {
			return err
		}
		return c.JSON(al)
	}
}

// checkAttachments refuses attachments that are not stored evidence (when evidence is served).
func (s *Server) checkAttachments(sums []string) error {
	if len(sums) > 32 {
		return errs.E(errs.KindInvalid, "invalid_attachment", "at most 32 attachments")
	}
	if s.Evidence == nil {
		return nil
	}
	for _, sum := range sums {
		f, err := s.Evidence.Open(sum)
		if err != nil {
			if errs.Is(err, errs.KindNotFound) {
				return errs.E(errs.KindInvalid, "unknown_attachment", "attachment %s is not stored evidence; upload it with POST /api/v1/evidence first", sum)
			}
			if errs.Is(err, errs.KindInvalid) {
				return errs.E(errs.KindInvalid, "invalid_attachment", "attachment %q is not an evidence sha256", excerpt([]byte(sum), 80))
			}
			return err
		}
		f.Close()
	}
	return nil
}

// OutcomeLabel is one feedback outcome as the UI shows it.
type OutcomeLabel struct {
	Code    string `json:"code"`
	LabelZH string `json:"label_zh"`
	LabelEN string `json:"label_en"`
}

func (s *Server) listOutcomes(c *fiber.Ctx) error {
	out := make([]OutcomeLabel, 0, len(events.Outcomes))
	for _, o := range events.Outcomes {
		out = append(out, OutcomeLabel{Code: o.Code, LabelZH: o.Label, LabelEN: o.LabelEN})
	}
	return c.JSON(fiber.Map{"outcomes": out})
}

func (s *Server) postEvidence(c *fiber.Ctx) error {
	mt, _, _ := mime.ParseMediaType(c.Get(fiber.HeaderContentType))
	ext, ok := events.EvidenceUploadTypes[mt]
	if !ok {
		return fiber.NewError(fiber.StatusUnsupportedMediaType, "send the evidence as image/jpeg or image/png")
	}
	body := c.Body()
	if limit := orDefault(s.EvidenceLimit, DefaultEvidenceLimit); len(body) > limit {
		return errs.E(errs.KindInvalid, "evidence_too_large", "evidence larger than %d bytes", limit)
	}
	if len(body) == 0 {
		return errs.E(errs.KindInvalid, "evidence_empty", "the body is empty; send the image")
	}
	if sniffed := http.DetectContentType(body); sniffed != mt {
		return errs.E(errs.KindInvalid, "evidence_type_mismatch", "the body is %s, not %s", sniffed, mt)
	}
	sum, url, err := s.Evidence.Put(bytes.NewReader(body), ext)
	if err != nil {
		return err
	}
	c.Status(fiber.StatusCreated)
	c.Set(fiber.HeaderLocation, url)
	return c.JSON(fiber.Map{"sha256": sum, "url": url})
}

// evidenceVisible is nil if the caller may see evidence sum: an administrator, or someone
// who may see an event or alert it is attached to. Otherwise it is evidence_not_found.
func (s *Server) evidenceVisible(c *fiber.Ctx, sum string) error {
	u, _ := UserOf(c)
	if u.Role == auth.RoleAdmin {
		return nil
	}
	notFound := errs.E(errs.KindNotFound, "evidence_not_found", "no such evidence file, or it is not attached to an event or alert you may see")
	if s.Events == nil {
		return notFound
	}
	ok, err := s.Events.EvidenceVisible(c.UserContext(), u.Scope(), sum, func(t string) bool { return typeVisible(u.Role, t) })
	if err != nil {
		return err
	}
	if !ok {
		return notFound
	}
	return nil
}
