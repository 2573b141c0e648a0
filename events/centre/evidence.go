package centre

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/offsite-gw/offsite/devices"
	"github.com/offsite-gw/offsite/events"
	"github.com/offsite-gw/offsite/events/uplink"
	"github.com/offsite-gw/offsite/internal/errs"
)

// Evidence fetch outcomes, the label of offsite_centre_evidence_fetches_total.
const (
	FetchOK       = "ok"
	FetchMismatch = "hash_mismatch"
	FetchType     = "type_mismatch"
	FetchMissing  = "not_at_site"
	FetchFailed   = "failed"
)

// EvidenceFetcher gets a child gateway's evidence file the first time someone at the centre
// opens it (docs/contracts.md §9): it finds the site gateway whose event carries the file,
// asks it with a request signed with that gateway's enrolment secret, checks the sha256 while
// the bytes arrive and keeps a copy only when it matches. A file that does not match is
// refused, counted and not kept.
type EvidenceFetcher struct {
	Log      *events.Log
	Gateways *devices.GatewayStore
	Store    *events.EvidenceStore
	Logger   *slog.Logger
	// Client is the HTTP client of fetches (default: 60 s timeout).
	Client *http.Client
	// MaxBytes bounds one file (default the store's MaxFileBytes, else 64 MiB).
	MaxBytes int64

	once    sync.Once
	mu      sync.Mutex
	running map[string]*fetchCall
	fetches *prometheus.CounterVec
	bytes   prometheus.Counter
}

type fetchCall struct {
	done chan struct{}
	err  error
}

func (f *EvidenceFetcher) init() {
	f.once.Do(func() {
		if f.Logger == nil {
			f.Logger = slog.Default()
		}
		f.running = map[string]*fetchCall{}
		f.fetches = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "offsite_centre_evidence_fetches_total",
			Help: "Evidence files fetched from site gateways on first open, by outcome (ok, hash_mismatch, type_mismatch, not_at_site, failed)."},
			[]string{"outcome"})
		f.bytes = prometheus.NewCounter(prometheus.CounterOpts{Name: "offsite_centre_evidence_fetched_bytes_total",
			Help: "Bytes of evidence files fetched from site gateways and kept."})
	})
}

// Collectors are the fetcher's Prometheus metrics.
func (f *EvidenceFetcher) Collectors() []prometheus.Collector {
	f.init()
	return []prometheus.Collector{f.fetches, f.bytes}
}

// Fetch brings ref into the store from the site gateway whose event carries it. Several
// callers asking for one file at once share one fetch. Errors: errs.KindNotFound
// evidence_not_found (no child's event carries it, or the site no longer has it),
// errs.KindUnavailable evidence_hash_mismatch / evidence_type_mismatch / evidence_fetch_failed.
func (f *EvidenceFetcher) Fetch(ctx context.Context, ref events.EvidenceRef) error {
	f.init()
	key := ref.SHA256 + ref.Ext
	f.mu.Lock()
	if c, ok := f.running[key]; ok {
		f.mu.Unlock()
		select {
		case <-c.done:
			return c.err
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	c := &fetchCall{done: make(chan struct{})}
	f.running[key] = c
	f.mu.Unlock()
	// The fetch outlives a caller who gives up: the next one finds the file.
	fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Minute)
	c.err = f.fetch(fctx, ref)
	cancel()
	f.mu.Lock()
	delete(f.running, key)
	f.mu.Unlock()
	close(c.done)
	return c.err
}

func (f *EvidenceFetcher) fetch(ctx context.Context, ref events.EvidenceRef) error {
	notFound := errs.E(errs.KindNotFound, "evidence_not_found", "no evidence %s%s here or at a site gateway", ref.SHA256, ref.Ext)
	carriers, err := f.Log.EventsWithEvidence(ctx, ref.SHA256, 100)
	if err != nil {
		return err
	}
	var tried []string
	var last error = notFound
	for _, e := range carriers {
		gw := e.GatewayID
		if gw == "" || contains(tried, gw) {
			continue
		}
		cred, err := f.Gateways.Credentials(ctx, gw)
		if err != nil || cred.Disabled {
			continue // this node's own event, or a gateway no longer enrolled
		}
		tried = append(tried, gw)
		g, err := f.Gateways.Get(ctx, gw)
		if err != nil {
			return err
		}
		last = f.fetchFrom(ctx, ref, g, cred)
		if last == nil {
			return nil
		}
		if !errs.Is(last, errs.KindNotFound) {
			return last // a mismatch or a failure: say so, do not hide it behind another try
		}
	}
	return last
}

func (f *EvidenceFetcher) fetchFrom(ctx context.Context, ref events.EvidenceRef, g devices.Gateway, cred devices.Credentials) error {
	max := f.MaxBytes
	if max <= 0 {
		max = f.Store.MaxFileBytes
	}
	fe := uplink.Fetch{BaseURL: g.BaseURL, GatewayID: g.ID, Alg: cred.Alg, Secret: cred.Secret, MaxBytes: max, Client: f.Client}
	if g.BaseURL == "" {
		f.fetches.WithLabelValues(FetchFailed).Inc()
		return errs.E(errs.KindUnavailable, "evidence_fetch_failed",
			"evidence %s is at site gateway %s, whose base URL is not set; set it in 站点网关 (PUT /api/v1/gateways/%s)", ref.SHA256, g.ID, g.ID)
	}
	var n int64
	_, err := f.Store.PutCopy(ref.SHA256, ref.Ext, func(w io.Writer) error {
		ctype, written, err := fe.Get(ctx, ref.SHA256, w)
		n = written
		if err != nil {
			return err
		}
		if mt, _, _ := mime.ParseMediaType(ctype); mt != ref.ContentType {
			return errTypeMismatch{got: ctype, want: ref.ContentType}
		}
		return nil
	})
	var tm errTypeMismatch
	var se *uplink.FetchStatusError
	switch {
	case err == nil:
		f.fetches.WithLabelValues(FetchOK).Inc()
		f.bytes.Add(float64(n))
		f.Logger.Info("centre: evidence fetched from site gateway", "gateway", g.ID, "sha256", ref.SHA256, "bytes", n)
		return nil
	case errors.Is(err, uplink.ErrEvidenceMismatch), errs.CodeOf(err) == "evidence_hash_mismatch":
		f.fetches.WithLabelValues(FetchMismatch).Inc()
		f.Logger.Warn("centre: evidence from site gateway refused: wrong hash", "gateway", g.ID, "sha256", ref.SHA256, "err", err)
		return errs.Wrap(errs.KindUnavailable, "evidence_hash_mismatch", err,
			"site gateway %s sent a file that does not match sha256 %s; it was refused and nothing was kept", g.ID, ref.SHA256)
	case errors.As(err, &tm):
		f.fetches.WithLabelValues(FetchType).Inc()
		return errs.Wrap(errs.KindUnavailable, "evidence_type_mismatch", err,
			"site gateway %s sent %s for a %s file; it was refused and nothing was kept", g.ID, tm.got, tm.want)
	case errors.As(err, &se) && se.Status == http.StatusNotFound:
		f.fetches.WithLabelValues(FetchMissing).Inc()
		return errs.Wrap(errs.KindNotFound, "evidence_not_found", err, "site gateway %s no longer has evidence %s", g.ID, ref.SHA256)
	default:
		f.fetches.WithLabelValues(FetchFailed).Inc()
		f.Logger.Warn("centre: evidence fetch from site gateway failed", "gateway", g.ID, "sha256", ref.SHA256, "err", err)
		return errs.Wrap(errs.KindUnavailable, "evidence_fetch_failed", err, "could not fetch evidence %s from site gateway %s: %v", ref.SHA256, g.ID, err)
	}
}

type errTypeMismatch struct{ got, want string }

func (e errTypeMismatch) Error() string { return "evidence: site sent " + e.got + ", want " + e.want }

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}
