// Package uplink delivers the event log to outside systems — the city's supervision core, the
// provincial platform (docs/contracts.md §6) and webhooks (generic JSON, DingTalk and WeCom robots).
// Each uplink is one goroutine with its own durable cursor over the log, its own filter and
// HTTP client: it sends batches in log order, retries the same batch with capped exponential
// backoff until it gets a definitive answer, and only then advances its cursor. Events a
// receiver rejects go to a dead-letter list an admin can see and re-send. A dead uplink keeps
// its own backlog and never slows the log or another uplink.
package uplink

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"os"
	"regexp"
	"strings"
	"sync"
	"time"

	"github.com/offsite-gw/offsite/events"
	"github.com/offsite-gw/offsite/events/event"
	"github.com/offsite-gw/offsite/internal/lease"
	"github.com/offsite-gw/offsite/internal/store"
)

// MaxBatch is the contract's limit of events per batch.
const MaxBatch = 500

// Config is one uplink's configuration (the uplinks: and webhooks: lists).
type Config struct {
	Name string `yaml:"name"`
	// Kind: offsite (default), webhook, dingtalk or wecom.
	Kind string `yaml:"kind"`
	// BaseURL of an offsite receiver; batches go to BaseURL/offsite/v1/events:batch.
	BaseURL string `yaml:"base_url"`
	// URL of a webhook or robot (the full URL, with access_token / key).
	URL string `yaml:"url"`
	// Alg: hmac-sm3 (default) or hmac-sha256.
	Alg string `yaml:"alg"`
	// Secret is the shared HMAC secret (for dingtalk: the robot's SEC… sign secret).
	Secret     string `yaml:"secret"`
	SecretFile string `yaml:"secret_file"`
	// Filter selects which events this uplink carries.
	Filter events.Filter `yaml:"filter"`
	// BatchSize: events per request (default and maximum 500; robots default 10).
	BatchSize int `yaml:"batch_size"`
	// MaxBatchBytes caps the body (default 4 MiB); a batch stops before it would exceed it.
	MaxBatchBytes int `yaml:"max_batch_bytes"`
	// Timeout of one request (default 15s); ConnectTimeout of dialling (default 5s).
	Timeout        time.Duration `yaml:"timeout"`
	ConnectTimeout time.Duration `yaml:"connect_timeout"`
	// BackoffMin and BackoffMax bound the retry delay (default 500ms and 60s).
	BackoffMin time.Duration `yaml:"backoff_min"`
	BackoffMax time.Duration `yaml:"backoff_max"`
	// InventoryEvery is how often a centre uplink checks the inventory for changes (default
	// 5s); HeartbeatEvery how often it sends it unchanged, so the centre knows the site is up
	// while it has no events (default 30s).
	InventoryEvery time.Duration `yaml:"inventory_every"`
	HeartbeatEvery time.Duration `yaml:"heartbeat_every"`
	// StartAt applies when the uplink has no cursor yet: "beginning" (default for offsite
	// and webhook) sends the whole log; "now" (default for robots) only what comes next.
	StartAt string `yaml:"start_at"`
}

var nameRE = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]{0,62}$`)

// Uplink delivers the log to one receiver. Fill the fields, call Initialize, Close to stop.
type Uplink struct {
	Config
	GatewayID string
	Log       *events.Log
	Logger    *slog.Logger
	// Version is this node's version, told to a centre.
	Version string
	// Inventory, for a centre uplink, returns what the site reports of itself (docs/contracts.md
	// §7); nil sends none.
	Inventory InventoryFunc
	// Lease, if set (centre instances sharing PostgreSQL), lets only the instance holding the
	// lease "uplink/NAME" deliver; it resumes from the durable cursor when it takes the lease
	// over. Nil (one instance) delivers always.
	Lease *lease.Keeper
	// Client, if nil, is built from the timeouts.
	Client *http.Client
	Now    func() time.Time

	secret  []byte
	proto   protocol
	cancel  context.CancelFunc
	done    chan struct{}
	invDone chan struct{}

	mu          sync.Mutex
	st          Status
	backlogHint int64
	inv         InventoryStatus
}

// Status is what the API and the dashboard show of an uplink.
type Status struct {
	Name string `json:"name"`
	Kind string `json:"kind"`
	URL  string `json:"url"`
	// Cursor is the last seq delivered (or skipped by the filter); Head the log's newest seq.
	Cursor int64 `json:"cursor"`
	Head   int64 `json:"head"`
	// Backlog is Head - Cursor: log positions not yet passed (before filtering).
	Backlog int64 `json:"backlog"`
	// LagSeconds is the age of the oldest event waiting to be delivered (0 when caught up).
	LagSeconds  float64    `json:"lag_seconds"`
	Pending     int        `json:"pending"` // events in the batch being tried
	Attempts    int        `json:"attempts"`
	LastError   string     `json:"last_error,omitempty"`
	LastErrorAt *time.Time `json:"last_error_at,omitempty"`
	LastSuccess *time.Time `json:"last_success,omitempty"`
	DeadLetters int64      `json:"dead_letters"`
	Delivered   uint64     `json:"delivered"` // events answered accepted/duplicate since start
	Rejected    uint64     `json:"rejected"`
	Requests    uint64     `json:"requests"`
	Failures    uint64     `json:"failures"`
	// Inventory is set on a centre uplink: the inventory reports to the centre.
	Inventory *InventoryStatus `json:"inventory,omitempty"`
	// Standby is true on a centre instance that does not hold the uplink's lease: another
	// instance delivers, and Cursor here is the last one this instance saw.
	Standby bool `json:"standby,omitempty"`

	oldest time.Time
}

// Initialize checks the config, loads the cursor and starts delivering.
func (u *Uplink) Initialize() error {
	if err := u.defaults(); err != nil {
		return fmt.Errorf("uplink %s: %w", u.Name, err)
	}
	ctx := context.Background()
	cur, err := u.loadCursor(ctx)
	if err != nil {
		return err
	}
	var dead int64
	if err := u.Log.DB.QueryRow(ctx, `SELECT COUNT(*) FROM uplink_dead_letters WHERE uplink = ? AND resolved_at = 0`, u.Name).Scan(&dead); err != nil {
		return fmt.Errorf("uplink %s: count dead letters: %w", u.Name, err)
	}
	// With a lease, the instance stands by until it holds it (said from the start, so no one
	// reads "delivering" from an instance that is not).
	u.st = Status{Name: u.Name, Kind: u.Kind, URL: redactURL(u.endpoint()), Cursor: cur, DeadLetters: dead, Standby: u.Lease != nil}
	ctx, u.cancel = context.WithCancel(ctx)
	u.done = make(chan struct{})
	if u.Kind == KindCentre && u.Inventory != nil {
		u.invDone = make(chan struct{})
		go u.runInventory(ctx)
	}
	go func() {
		defer close(u.done)
		if u.Lease == nil {
			u.run(ctx, cur)
			return
		}
		u.Lease.Run(ctx, "uplink/"+u.Name, func(ctx context.Context) {
			// Another instance may have delivered meanwhile: resume from the durable cursor.
			var cur int64
			for attempt := 0; ; attempt++ {
				var err error
				if cur, err = u.loadCursor(ctx); err == nil {
					break
				}
				if ctx.Err() != nil {
					return
				}
				u.fail(err)
				u.sleep(ctx, u.backoff(attempt))
			}
			var dead int64
			if err := u.Log.DB.QueryRow(ctx, `SELECT COUNT(*) FROM uplink_dead_letters WHERE uplink = ? AND resolved_at = 0`, u.Name).Scan(&dead); err != nil {
				u.fail(err)
			}
			u.Logger.Info("uplink: this instance delivers", "cursor", cur, "holder", u.Lease.Holder)
			u.update(func(st *Status) {
				st.Standby, st.Cursor, st.Pending, st.Attempts, st.DeadLetters = false, cur, 0, 0, dead
			})
			defer u.update(func(st *Status) { st.Standby, st.Pending, st.oldest = true, 0, time.Time{} })
			u.run(ctx, cur)
		})
	}()
	return nil
}

// Close stops delivery and waits for the goroutine. The cursor is durable; a batch in flight
// is sent again after restart (receivers de-duplicate by id).
func (u *Uplink) Close() {
	if u.cancel != nil {
		u.cancel()
		<-u.done
		if u.invDone != nil {
			<-u.invDone
		}
	}
}

// Validate checks a configuration the way Initialize would, without starting anything, so a
// bad uplink stops start-up with the key and the reason.
func (c Config) Validate() error {
	u := &Uplink{Config: c}
	return u.defaults()
}

func (u *Uplink) defaults() error {
	if !nameRE.MatchString(u.Name) {
		return fmt.Errorf("name %q must be 1–63 of a-z 0-9 _ -", u.Name)
	}
	if u.Kind == "" {
		u.Kind = KindOffsite
	}
	if u.Kind == KindCentre && u.BaseURL == "" {
		u.BaseURL = u.URL // a centre is named by url or base_url
	}
	switch u.Kind {
	case KindOffsite, KindCentre:
		if err := checkURL(u.BaseURL); err != nil {
			return fmt.Errorf("base_url: %w", err)
		}
	case KindWebhook, KindDingTalk, KindWeCom:
		if err := checkURL(u.URL); err != nil {
			return fmt.Errorf("url: %w", err)
		}
	default:
		return fmt.Errorf("kind %q must be offsite, centre, webhook, dingtalk or wecom", u.Kind)
	}
	if u.Alg == "" {
		u.Alg = AlgSM3
	}
	if _, err := hashFor(u.Alg); err != nil {
		return err
	}
	u.secret = []byte(u.Secret)
	if u.Secret == "" && u.SecretFile != "" {
		b, err := os.ReadFile(u.SecretFile)
		if err != nil {
			return fmt.Errorf("secret_file: %w", err)
		}
		u.secret = []byte(strings.TrimSpace(string(b)))
	}
	if len(u.secret) == 0 && (u.Kind == KindOffsite || u.Kind == KindCentre) {
		return errors.New("secret or secret_file is required: receivers refuse unsigned batches")
	}
	robot := u.Kind == KindDingTalk || u.Kind == KindWeCom
	if u.BatchSize <= 0 {
		u.BatchSize = MaxBatch
		if robot {
			u.BatchSize = 10
		}
	}
	u.BatchSize = min(u.BatchSize, MaxBatch)
	if robot && len(u.Filter.Types) == 0 {
		// Robot messages are for people: by default only what needs someone to act.
		u.Filter.Types = []string{"alert.opened", "alert.escalated"}
	}
	if u.MaxBatchBytes <= 0 {
		u.MaxBatchBytes = 4 << 20
	}
	if u.Timeout <= 0 {
		u.Timeout = 15 * time.Second
	}
	if u.ConnectTimeout <= 0 {
		u.ConnectTimeout = 5 * time.Second
	}
	if u.BackoffMin <= 0 {
		u.BackoffMin = 500 * time.Millisecond
	}
	if u.BackoffMax <= 0 {
		u.BackoffMax = time.Minute
	}
	if u.BackoffMax < u.BackoffMin {
		u.BackoffMax = u.BackoffMin
	}
	switch u.StartAt {
	case "":
		u.StartAt = "beginning"
		if robot {
			u.StartAt = "now"
		}
	case "beginning", "now":
	default:
		return fmt.Errorf("start_at %q must be beginning or now", u.StartAt)
	}
	if u.Filter.MinSeverity != "" && event.SeverityRank(u.Filter.MinSeverity) < 0 {
		return fmt.Errorf("filter.min_severity %q must be one of %s", u.Filter.MinSeverity, strings.Join(event.Severities, ", "))
	}
	if u.Logger == nil {
		u.Logger = slog.Default()
	}
	u.Logger = u.Logger.With("uplink", u.Name)
	if u.Now == nil {
		u.Now = time.Now
	}
	if u.Client == nil {
		tr := http.DefaultTransport.(*http.Transport).Clone()
		tr.DialContext = (&net.Dialer{Timeout: u.ConnectTimeout, KeepAlive: 30 * time.Second}).DialContext
		tr.MaxIdleConnsPerHost = 2
		tr.ResponseHeaderTimeout = u.Timeout
		u.Client = &http.Client{Timeout: u.Timeout, Transport: tr}
	}
	if u.InventoryEvery <= 0 {
		u.InventoryEvery = 5 * time.Second
	}
	if u.HeartbeatEvery <= 0 {
		u.HeartbeatEvery = 30 * time.Second
	}
	u.proto = protocolFor(u.Kind)
	return nil
}

func checkURL(s string) error {
	p, err := url.Parse(s)
	if err != nil {
		return err
	}
	if p.Scheme != "http" && p.Scheme != "https" || p.Host == "" {
		return fmt.Errorf("%q must be an http(s) URL", s)
	}
	return nil
}

func (u *Uplink) endpoint() string {
	if u.Kind == KindOffsite || u.Kind == KindCentre {
		return strings.TrimRight(u.BaseURL, "/") + "/offsite/v1/events:batch"
	}
	return u.URL
}

func redactURL(s string) string {
	p, err := url.Parse(s)
	if err != nil {
		return "(invalid)"
	}
	p.User = nil
	if q := p.Query(); len(q) > 0 {
		for k := range q {
			q.Set(k, "***")
		}
		p.RawQuery = q.Encode()
	}
	return p.String()
}

func (u *Uplink) loadCursor(ctx context.Context) (int64, error) {
	var seq int64
	err := u.Log.DB.QueryRow(ctx, `SELECT seq FROM uplink_cursors WHERE name = ?`, u.Name).Scan(&seq)
	if err == nil {
		return seq, nil
	}
	if !store.IsNoRows(err) {
		return 0, fmt.Errorf("uplink %s: read cursor: %w", u.Name, err)
	}
	if u.StartAt == "now" {
		seq, _ = u.Log.Head()
	}
	// Another centre instance starting at the same time may create it first: then its row wins.
	if _, err := u.Log.DB.Exec(ctx, `INSERT INTO uplink_cursors(name, seq, updated_at) VALUES (?, ?, ?) ON CONFLICT (name) DO NOTHING`,
		u.Name, seq, u.Now().UnixMilli()); err != nil {
		return 0, fmt.Errorf("uplink %s: create cursor: %w", u.Name, err)
	}
	if err := u.Log.DB.QueryRow(ctx, `SELECT seq FROM uplink_cursors WHERE name = ?`, u.Name).Scan(&seq); err != nil {
		return 0, fmt.Errorf("uplink %s: read cursor: %w", u.Name, err)
	}
	return seq, nil
}

// Status returns the uplink's delivery state.
func (u *Uplink) Status() Status {
	head, _ := u.Log.Head()
	u.mu.Lock()
	st := u.st
	if u.Kind == KindCentre && u.Inventory != nil {
		inv := u.inv
		st.Inventory = &inv
	}
	u.mu.Unlock()
	st.Head = max(head, st.Cursor)
	st.Backlog = st.Head - st.Cursor
	if st.Standby {
		st.Backlog = 0 // the delivering instance reports it
	}
	if !st.oldest.IsZero() {
		st.LagSeconds = max(0, u.Now().Sub(st.oldest).Seconds())
	}
	return st
}

func (u *Uplink) update(fn func(st *Status)) {
	u.mu.Lock()
	fn(&u.st)
	u.mu.Unlock()
}

// run is the delivery loop: read a batch after the cursor, send it until a definitive answer,
// record rejections and advance the cursor in one transaction, repeat.
func (u *Uplink) run(ctx context.Context, cursor int64) {
	var batch []event.Event
	var through int64
	attempt := 0
	for ctx.Err() == nil {
		if batch == nil {
			evs, thr, err := u.Log.Scan(ctx, cursor, u.Filter, u.BatchSize)
			if err != nil {
				u.fail(err)
				u.sleep(ctx, u.backoff(attempt))
				attempt++
				continue
			}
			size := 64
			for i, e := range evs {
				size += len(e.Raw) + 1
				if i > 0 && size > u.MaxBatchBytes {
					evs, thr = evs[:i], evs[i-1].Seq
					break
				}
			}
			if len(evs) == 0 {
				if thr > cursor {
					if err := u.advance(ctx, cursor, thr, nil, nil); err != nil {
						u.fail(err)
						u.sleep(ctx, u.backoff(attempt))
						attempt++
						continue
					}
					cursor = thr
					u.update(func(st *Status) { st.Cursor = cursor })
				}
				attempt = 0
				_ = u.Log.WaitAfter(ctx, cursor)
				continue
			}
			batch, through = evs, thr
			u.update(func(st *Status) { st.Pending = len(batch); st.oldest = batch[0].LoggedAt })
		}
		rejected, err := u.send(ctx, batch)
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			u.fail(err)
			u.sleep(ctx, u.backoff(attempt))
			attempt++
			continue
		}
		if err := u.advance(ctx, cursor, through, batch, rejected); err != nil {
			u.fail(err)
			u.sleep(ctx, u.backoff(attempt))
			attempt++
			continue // sends the batch again: receivers de-duplicate
		}
		cursor = through
		now := u.Now()
		u.update(func(st *Status) {
			st.Cursor = cursor
			st.Pending, st.Attempts, st.oldest = 0, 0, time.Time{}
			st.LastSuccess = &now
			st.Delivered += uint64(len(batch) - len(rejected))
			st.Rejected += uint64(len(rejected))
			st.DeadLetters += int64(len(rejected))
		})
		batch, attempt = nil, 0
	}
}

func (u *Uplink) send(ctx context.Context, batch []event.Event) ([]Rejection, error) {
	if u.Kind == KindCentre {
		head, _ := u.Log.Head()
		u.mu.Lock()
		u.backlogHint = max(0, head-batch[len(batch)-1].Seq)
		u.mu.Unlock()
	}
	req, err := u.proto.request(ctx, u, batch, u.Now())
	if err != nil {
		return nil, err
	}
	u.update(func(st *Status) { st.Requests++ })
	resp, err := u.Client.Do(req)
	if err != nil {
		return nil, err
	}
	body := readBody(resp.Body)
	resp.Body.Close()
	return u.proto.verdict(resp, body, batch)
}

func (u *Uplink) fail(err error) {
	now := u.Now()
	u.Logger.Warn("uplink delivery failed; will retry", "err", err)
	u.update(func(st *Status) {
		st.LastError, st.LastErrorAt = err.Error(), &now
		st.Failures++
		st.Attempts++
	})
}

// backoff is capped exponential with jitter in [d/2, d).
func (u *Uplink) backoff(attempt int) time.Duration {
	d := u.BackoffMin
	for i := 0; i < attempt && d < u.BackoffMax; i++ {
		d *= 2
	}
	d = min(d, u.BackoffMax)
	return d/2 + time.Duration(rand.Int64N(int64(d/2)+1))
}

func (u *Uplink) sleep(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
	}
}

// advance records rejected events as dead letters and moves the cursor, in one transaction.
func (u *Uplink) advance(ctx context.Context, from, to int64, batch []event.Event, rejected []Rejection) error {
	seqOf := make(map[string]int64, len(batch))
	for _, e := range batch {
		seqOf[e.ID] = e.Seq
	}
	now := u.Now().UnixMilli()
	// The receiver has answered: record that even when the uplink is being stopped, or the
	// instance that takes over sends the batch again.
	ctx = context.WithoutCancel(ctx)
	return u.Log.DB.InTx(ctx, func(tx *store.Tx) error {
		for _, r := range rejected {
			if _, err := tx.Exec(ctx, `INSERT INTO uplink_dead_letters(uplink, event_id, seq, reason, at) VALUES (?, ?, ?, ?, ?)
				ON CONFLICT (uplink, event_id) DO UPDATE SET reason = excluded.reason, at = excluded.at,
				attempts = uplink_dead_letters.attempts + 1, resolved_at = 0`, u.Name, r.ID, seqOf[r.ID], truncate(r.Reason, 500), now); err != nil {
				return fmt.Errorf("uplink %s: record dead letter: %w", u.Name, err)
			}
			u.Logger.Warn("event rejected by receiver; kept as dead letter", "event_id", r.ID, "reason", r.Reason)
		}
		if _, err := tx.Exec(ctx, `UPDATE uplink_cursors SET seq = ?, updated_at = ? WHERE name = ? AND seq = ?`, to, now, u.Name, from); err != nil {
			return fmt.Errorf("uplink %s: advance cursor: %w", u.Name, err)
		}
		return nil
	})
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n]
}
