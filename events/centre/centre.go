// Package centre is the receiving side of a centre (docs/contracts.md §7): it takes the event
// batches and inventories its enrolled site gateways send, checks each request's signature with
// that gateway's enrolment secret, refuses stale or replayed requests and events that claim
// another gateway, logs the events once by id in the order sent, and watches every gateway's
// health (gateway.offline / gateway.online). Enrolment and the inventory tables belong to
// devices; the HTTP routes to api.
package centre

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/offsite-gw/offsite/devices"
	"github.com/offsite-gw/offsite/events"
	"github.com/offsite-gw/offsite/events/event"
	"github.com/offsite-gw/offsite/events/uplink"
	"github.com/offsite-gw/offsite/internal/errs"
)

// Headers a site adds to its requests besides the signature (informational, for health).
const (
	HeaderBacklog = "X-Offsite-Backlog"
	HeaderVersion = "X-Offsite-Version"
)

// Refusal reasons, the label of offsite_centre_refused_total.
const (
	RefusedUnknownGateway = "unknown_gateway"
	RefusedDisabled       = "gateway_disabled"
	RefusedSignature      = "bad_signature"
	RefusedStale          = "stale_timestamp"
	RefusedReplay         = "replayed_request"
	RefusedBody           = "bad_body"
	RefusedForeign        = "foreign_gateway_id"
	RefusedConflict       = "conflicting_content"
	RefusedInvalid        = "invalid_event"
)

// Receiver takes requests from enrolled site gateways.
type Receiver struct {
	Log      *events.Log
	Gateways *devices.GatewayStore
	// MaxSkew is how far a request's timestamp may be from the centre's clock (default 5 min).
	MaxSkew time.Duration
	Logger  *slog.Logger
	Now     func() time.Time

	once     sync.Once
	qmu      sync.Mutex
	queue    []*intake
	leaderMu sync.Mutex
	refused  *prometheus.CounterVec
	received *prometheus.CounterVec
	batchDur prometheus.Histogram
	// Where a batch's time goes, to find the tail: waiting for the group it joins to start,
	// that group's transaction, and how many batches one transaction commits.
	groupWait   prometheus.Histogram
	groupCommit prometheus.Histogram
	groupSize   prometheus.Histogram
}

func (r *Receiver) init() {
	r.once.Do(func() {
		if r.MaxSkew <= 0 {
			r.MaxSkew = 5 * time.Minute
		}
		if r.Logger == nil {
			r.Logger = slog.Default()
		}
		if r.Now == nil {
			r.Now = time.Now
		}
		r.refused = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "offsite_centre_refused_total",
			Help: "Requests and events from site gateways refused by the centre, by reason."}, []string{"reason"})
		r.received = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "offsite_centre_events_total",
			Help: "Events received from site gateways, by outcome (accepted, duplicate, rejected)."}, []string{"outcome"})
		r.batchDur = prometheus.NewHistogram(prometheus.HistogramOpts{Name: "offsite_centre_batch_seconds",
			Help: "Time to verify and log one batch from a site gateway.", Buckets: prometheus.ExponentialBuckets(0.001, 2, 14)})
		r.groupWait = prometheus.NewHistogram(prometheus.HistogramOpts{Name: "offsite_centre_group_wait_seconds",
			Help:    "Time a verified batch waits until the transaction that commits it starts (group commit).",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 14)})
		r.groupCommit = prometheus.NewHistogram(prometheus.HistogramOpts{Name: "offsite_centre_group_commit_seconds",
			Help:    "Time of one transaction committing a group of batches.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 14)})
		r.groupSize = prometheus.NewHistogram(prometheus.HistogramOpts{Name: "offsite_centre_group_batches",
			Help: "Batches committed in one transaction (group commit).", Buckets: prometheus.ExponentialBuckets(1, 2, 10)})
	})
}

// Collectors are the receiver's Prometheus metrics.
func (r *Receiver) Collectors() []prometheus.Collector {
	r.init()
	return []prometheus.Collector{r.refused, r.received, r.batchDur, r.groupWait, r.groupCommit, r.groupSize}
}

// refuse counts a refused request and returns the error the sender sees.
func (r *Receiver) refuse(ctx context.Context, gw, reason, remote string, err error) error {
	r.refused.WithLabelValues(reason).Inc()
	msg := err.Error()
	r.Logger.Warn("centre: request refused", "gateway", gw, "reason", reason, "remote", remote, "err", msg)
	if gw != "" && reason != RefusedUnknownGateway {
		r.Gateways.Refused(ctx, gw, reason+": "+msg)
	}
	kind := errs.KindUnauthorized
	switch reason {
	case RefusedBody:
		kind = errs.KindInvalid
	case RefusedDisabled:
		kind = errs.KindForbidden
	}
	return errs.Wrap(kind, reason, err, "%s", msg)
}

// authenticate checks the signature headers against the named gateway's secret (not the
// nonce: that is recorded in the transaction that stores the request's content).
func (r *Receiver) authenticate(ctx context.Context, h http.Header, body []byte, remote string) (string, error) {
	gw := h.Get(uplink.HeaderGateway)
	if gw == "" {
		return "", r.refuse(ctx, "", RefusedSignature, remote, errors.New("X-Offsite-Gateway header missing: requests must be signed (docs/contracts.md §6)"))
	}
	cred, err := r.Gateways.Credentials(ctx, gw)
	if errs.Is(err, errs.KindNotFound) {
		return gw, r.refuse(ctx, gw, RefusedUnknownGateway, remote, fmt.Errorf("gateway %q is not enrolled at this centre", gw))
	}
	if err != nil {
		return gw, err
	}
	if cred.Disabled {
		return gw, r.refuse(ctx, gw, RefusedDisabled, remote, fmt.Errorf("gateway %q is disabled at this centre", gw))
	}
	if err := uplink.Verify(cred.Secret, cred.Alg, h, body, r.Now(), r.MaxSkew); err != nil {
		reason := RefusedSignature
		if errors.Is(err, uplink.ErrSkew) {
			reason = RefusedStale
		}
		return gw, r.refuse(ctx, gw, reason, remote, err)
	}
	return gw, nil
}

// intake is one verified batch on its way into the log.
type intake struct {
	gw, remote, version, nonce string
	backlog                    int64
	events                     []json.RawMessage
	queued                     time.Time

	got  events.Received
	prev string // the gateway's state before this contact
	err  error
	done chan struct{}
}

// maxGroupEvents bounds the events of the batches committed in one transaction.
const maxGroupEvents = 5000

// logBatch logs j and returns when it is committed (or failed). Batches that arrive while
// another is being committed are committed together in the next transaction (group commit):
// a hundred sites posting at once cost a few transactions, not a hundred. Within it each
// batch records its nonce (a replay stores nothing of that batch), its events in the order
// sent and its gateway's contact, in arrival order. If the group fails, each batch is retried
// alone, so one batch's failure never fails another's.
func (r *Receiver) logBatch(ctx context.Context, j *intake) {
	j.queued = time.Now()
	r.qmu.Lock()
	r.queue = append(r.queue, j)
	r.qmu.Unlock()

	r.leaderMu.Lock()
	defer r.leaderMu.Unlock()
	gctx := context.WithoutCancel(ctx) // the group is others' work too
	for {
		select {
		case <-j.done: // a previous leader committed it
			return
		default:
		}
		r.qmu.Lock()
		k, n := 0, 0
		for k < len(r.queue) && (k == 0 || n+len(r.queue[k].events) <= maxGroupEvents) {
			n += len(r.queue[k].events)
			k++
		}
		group := r.queue[:k:k]
		r.queue = append([]*intake(nil), r.queue[k:]...)
		r.qmu.Unlock()

		began := time.Now()
		for _, g := range group {
			r.groupWait.Observe(began.Sub(g.queued).Seconds())
		}
		err := r.commit(gctx, group)
		r.groupCommit.Observe(time.Since(began).Seconds())
		r.groupSize.Observe(float64(len(group)))
		if err != nil && len(group) > 1 {
			for _, g := range group {
				if e := r.commit(gctx, []*intake{g}); e != nil {
					g.err = e
				}
				close(g.done)
			}
			continue
		}
		for _, g := range group {
			if err != nil {
				g.err = err
			}
			close(g.done)
		}
	}
}

// commit logs a group of batches in one transaction of the log: the nonces of the group, its
// events in arrival order and its gateways' contacts, each with one statement for the group
// (on PostgreSQL each statement is a round trip while the log is locked).
func (r *Receiver) commit(ctx context.Context, group []*intake) error {
	return r.Log.InTx(ctx, func(tx *events.Tx) error {
		uses := make([]devices.NonceUse, len(group))
		for i, j := range group {
			j.got, j.prev, j.err = events.Received{}, "", nil
			uses[i] = devices.NonceUse{Gateway: j.gw, Nonce: j.nonce}
		}
		fresh, err := r.Gateways.UseNonces(ctx, tx, uses)
		if err != nil {
			return err
		}
		var logged []*intake
		var batches []events.ReceivedBatch
		for i, j := range group {
			if !fresh[i] {
				j.err = errReplay
				continue
			}
			logged = append(logged, j)
			batches = append(batches, events.ReceivedBatch{Sender: j.gw, Events: j.events})
		}
		if len(logged) == 0 {
			return nil
		}
		got, err := tx.AppendReceivedGroup(ctx, batches)
		if err != nil {
			return err
		}
		contacts := make([]devices.GatewayContact, len(logged))
		for i, j := range logged {
			j.got = got[i]
			contacts[i] = devices.GatewayContact{Gateway: j.gw, Addr: j.remote, Version: j.version, Backlog: j.backlog,
				Events: len(j.got.Accepted)}
		}
		prev, err := r.Gateways.ContactsIn(ctx, tx, contacts)
		if err != nil {
			return err
		}
		seen := make(map[string]bool, len(logged))
		for _, j := range logged {
			if !seen[j.gw] { // the state before the gateway's first batch of the group
				seen[j.gw] = true
				j.prev = prev[j.gw]
			} else {
				j.prev = devices.GatewayOnline
			}
		}
		return nil
	})
}

var errReplay = errors.New("nonce already used: a captured request cannot be sent again")

// Batch handles POST /offsite/v1/events:batch from a site gateway and returns the answer of
// docs/contracts.md §6, after the accepted events are committed.
func (r *Receiver) Batch(ctx context.Context, h http.Header, body []byte, remote string) (uplink.BatchResponse, error) {
	r.init()
	start := time.Now()
	gw, err := r.authenticate(ctx, h, body, remote)
	if err != nil {
		return uplink.BatchResponse{}, err
	}
	var req struct {
		GatewayID string            `json:"gateway_id"`
		Events    []json.RawMessage `json:"events"`
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	if err := dec.Decode(&req); err != nil {
		return uplink.BatchResponse{}, r.refuse(ctx, gw, RefusedBody, remote, fmt.Errorf("body must be {\"gateway_id\", \"events\": [...]}: %v", err))
	}
	if req.GatewayID != gw {
		return uplink.BatchResponse{}, r.refuse(ctx, gw, RefusedForeign, remote,
			fmt.Errorf("body gateway_id %q differs from X-Offsite-Gateway %q", req.GatewayID, gw))
	}
	if len(req.Events) > uplink.MaxBatch {
		return uplink.BatchResponse{}, r.refuse(ctx, gw, RefusedBody, remote, fmt.Errorf("%d events in one batch; at most %d", len(req.Events), uplink.MaxBatch))
	}
	backlog, _ := strconv.ParseInt(h.Get(HeaderBacklog), 10, 64)
	j := &intake{gw: gw, remote: remote, version: h.Get(HeaderVersion), backlog: backlog, nonce: h.Get(uplink.HeaderNonce),
		events: req.Events, done: make(chan struct{})}
	r.logBatch(ctx, j)
	got, prev, err := j.got, j.prev, j.err
	if errors.Is(err, errReplay) {
		return uplink.BatchResponse{}, r.refuse(ctx, gw, RefusedReplay, remote, err)
	}
	if err != nil {
		return uplink.BatchResponse{}, fmt.Errorf("centre: log batch of %s: %w", gw, err)
	}
	resp := uplink.BatchResponse{Accepted: got.Accepted, Duplicates: got.Duplicates, Rejected: []uplink.Rejection{}}
	if resp.Accepted == nil {
		resp.Accepted = []string{}
	}
	if resp.Duplicates == nil {
		resp.Duplicates = []string{}
	}
	for _, x := range got.Rejected {
		resp.Rejected = append(resp.Rejected, uplink.Rejection{ID: x.ID, Reason: x.Reason})
	}
	r.received.WithLabelValues("accepted").Add(float64(len(got.Accepted)))
	r.received.WithLabelValues("duplicate").Add(float64(len(got.Duplicates)))
	r.received.WithLabelValues("rejected").Add(float64(len(got.Rejected)))
	for reason, n := range map[string]int{RefusedForeign: got.Foreign, RefusedConflict: got.Conflicts, RefusedInvalid: got.Invalid} {
		if n > 0 {
			r.refused.WithLabelValues(reason).Add(float64(n))
			r.Gateways.Refused(ctx, gw, fmt.Sprintf("%s: %d event(s), first %s: %s", reason, n, got.Rejected[0].ID, got.Rejected[0].Reason))
			r.Logger.Warn("centre: events rejected", "gateway", gw, "reason", reason, "count", n, "first", got.Rejected[0].ID)
		}
	}
	if prev == devices.GatewayOffline {
		r.returned(ctx, gw)
	}
	r.batchDur.Observe(time.Since(start).Seconds())
	return resp, nil
}

// InventoryAnswer is the answer to PUT /offsite/v1/inventory: the revision the centre holds.
type InventoryAnswer struct {
	Revision int64 `json:"revision"`
	Stored   bool  `json:"stored"`
}

// Inventory handles PUT /offsite/v1/inventory: the site's sites and devices, kept if the
// revision is newer than the one held. A repeat of the held revision is a heartbeat.
func (r *Receiver) Inventory(ctx context.Context, h http.Header, body []byte, remote string) (InventoryAnswer, error) {
	r.init()
	gw, err := r.authenticate(ctx, h, body, remote)
	if err != nil {
		return InventoryAnswer{}, err
	}
	var inv devices.Inventory
	if err := json.Unmarshal(body, &inv); err != nil {
		return InventoryAnswer{}, r.refuse(ctx, gw, RefusedBody, remote, fmt.Errorf("body must be an inventory {\"gateway_id\", \"revision\", \"sites\", \"devices\"}: %v", err))
	}
	if inv.GatewayID != gw {
		return InventoryAnswer{}, r.refuse(ctx, gw, RefusedForeign, remote, fmt.Errorf("body gateway_id %q differs from X-Offsite-Gateway %q", inv.GatewayID, gw))
	}
	if ok, err := r.Gateways.UseNonce(ctx, r.Log.DB, gw, h.Get(uplink.HeaderNonce)); err != nil {
		return InventoryAnswer{}, err
	} else if !ok {
		return InventoryAnswer{}, r.refuse(ctx, gw, RefusedReplay, remote, errReplay)
	}
	rev, stored, err := r.Gateways.PutInventory(ctx, &inv)
	if errs.Is(err, errs.KindInvalid) {
		return InventoryAnswer{}, r.refuse(ctx, gw, RefusedBody, remote, err)
	}
	if err != nil {
		return InventoryAnswer{}, err
	}
	if stored {
		r.Logger.Info("centre: inventory stored", "gateway", gw, "revision", rev, "sites", len(inv.Sites), "devices", len(inv.Devices))
	}
	r.contact(ctx, gw, remote, inv.Version, inv.Backlog, 0)
	return InventoryAnswer{Revision: rev, Stored: stored}, nil
}

// contact records that gw spoke and announces its return if it had been marked offline.
func (r *Receiver) contact(ctx context.Context, gw, remote, version string, backlog int64, n int) {
	prev, err := r.Gateways.Contact(ctx, gw, remote, version, backlog, n)
	if err != nil {
		r.Logger.Warn("centre: gateway contact not recorded", "gateway", gw, "err", err)
		return
	}
	if prev == devices.GatewayOffline {
		r.returned(ctx, gw)
	}
}

// returned announces that gw, marked offline, spoke again.
func (r *Receiver) returned(ctx context.Context, gw string) {
	g, _ := r.Gateways.Get(ctx, gw)
	r.announce(ctx, g, false)
}

// announce logs gateway.offline (offline) or gateway.online for g, one alarm per gateway.
func (r *Receiver) announce(ctx context.Context, g devices.Gateway, offline bool) {
	name := g.Name
	if name == "" {
		name = g.ID
	}
	e := event.Event{Type: event.TypeGatewayOnline, Severity: "info", State: event.StateCleared,
		AlarmKey: "gateway/" + g.ID + "/offline", Rule: "gateway-offline",
		Device:  &event.Device{ID: g.ID, Kind: string(devices.KindGateway)},
		Message: fmt.Sprintf("站点网关「%s」（%s）已恢复连接", name, g.ID)}
	if offline {
		e.Type, e.Severity, e.State = event.TypeGatewayOffline, "major", event.StateActive
		since := "从未联系"
		if g.LastSeen != nil {
			since = "最后联系 " + g.LastSeen.Local().Format("2006-01-02 15:04:05")
		}
		e.Message = fmt.Sprintf("站点网关「%s」（%s）已离线，%s", name, g.ID, since)
	}
	for attempt := 0; ; attempt++ {
		_, err := r.Log.Append(ctx, e)
		if err == nil || ctx.Err() != nil || attempt >= 5 {
			if err != nil {
				r.Logger.Error("centre: gateway state event not logged", "gateway", g.ID, "type", e.Type, "err", err)
			}
			return
		}
		time.Sleep(time.Second)
	}
}

// Monitor marks enrolled gateways offline when they have been silent for longer than
// OfflineAfter while this centre was running, and logs gateway.offline for each.
type Monitor struct {
	Receiver     *Receiver
	OfflineAfter time.Duration // default 2 minutes
	Every        time.Duration // default 5 s
	// NoncesFor is how long request nonces are remembered (default 4 × MaxSkew).
	NoncesFor time.Duration
}

// Run checks until ctx ends. A centre that was itself down does not count its own downtime:
// silence is measured from the later of the last contact and this process's start.
func (m *Monitor) Run(ctx context.Context) {
	r := m.Receiver
	r.init()
	if m.OfflineAfter <= 0 {
		m.OfflineAfter = 2 * time.Minute
	}
	if m.Every <= 0 {
		m.Every = 5 * time.Second
	}
	if m.NoncesFor <= 0 {
		m.NoncesFor = 4 * r.MaxSkew
	}
	started := r.Now()
	t := time.NewTicker(m.Every)
	defer t.Stop()
	lastPrune := time.Time{}
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		now := r.Now()
		if now.Sub(started) >= m.OfflineAfter {
			m.check(ctx, now)
		}
		if now.Sub(lastPrune) > time.Minute {
			if _, err := r.Gateways.PruneNonces(ctx, now.Add(-m.NoncesFor)); err != nil && ctx.Err() == nil {
				r.Logger.Warn("centre: old nonces not pruned", "err", err)
			}
			lastPrune = now
		}
	}
}

func (m *Monitor) check(ctx context.Context, now time.Time) {
	r := m.Receiver
	gws, err := r.Gateways.List(ctx)
	if err != nil {
		if ctx.Err() == nil {
			r.Logger.Warn("centre: gateway health not checked", "err", err)
		}
		return
	}
	for _, g := range gws {
		if g.Disabled || g.State != devices.GatewayOnline {
			continue
		}
		if g.LastSeen != nil && now.Sub(*g.LastSeen) < m.OfflineAfter {
			continue
		}
		ok, err := r.Gateways.MarkOffline(ctx, g.ID, now.Add(-m.OfflineAfter))
		if err != nil {
			r.Logger.Warn("centre: gateway not marked offline", "gateway", g.ID, "err", err)
			continue
		}
		if ok {
			r.Logger.Warn("centre: site gateway silent; marked offline", "gateway", g.ID, "last_seen", g.LastSeen)
			r.announce(ctx, g, true)
		}
	}
}
