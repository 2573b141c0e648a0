// Package provincesim is the local receiver that stands in for the provincial platform (and
// the city's supervision core) in the demo and in tests. It implements the receiving side of
// docs/contracts.md §6 completely: signature, timestamp skew and nonce replay checks, per-event
// schema validation, de-duplication by id, and durable storage of what it accepted (memory plus
// an optional JSONL file, so a demo survives restarts). Fault injection (failure ratio, down
// windows, latency) lets tests prove that uplinks lose nothing.
package provincesim

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	"github.com/oklog/ulid/v2"

	"github.com/offsite-gw/offsite/events/uplink"
)

// Received is one accepted event.
type Received struct {
	ID         string          `json:"id"`
	Gateway    string          `json:"gateway"`
	ReceivedAt time.Time       `json:"received_at"`
	Event      json.RawMessage `json:"event"`
}

// Stats counts what the receiver has seen.
type Stats struct {
	Received   int `json:"received"`
	Duplicates int `json:"duplicates"`
	Rejected   int `json:"rejected"`
	Conflicts  int `json:"conflicts"`
	Batches    int `json:"batches"`
	Refused    int `json:"refused"`  // bad signature, skew, replay
	Injected   int `json:"injected"` // failures injected
	// EvidenceFetched counts evidence files fetched (FetchEvidence) whose hash matched.
	EvidenceFetched int `json:"evidence_fetched"`
}

// Handler serves POST /offsite/v1/events:batch and GET /offsite/v1/status.
type Handler struct {
	Secret []byte
	// Alg: "" accepts hmac-sm3 and hmac-sha256.
	Alg     string
	MaxSkew time.Duration // default 5 minutes
	// Dir, if set, keeps accepted events in Dir/received.jsonl and reloads them on Initialize.
	Dir    string
	Logger *slog.Logger

	// Fault injection.
	// FailRatio of batches is answered 503 before anything is stored.
	FailRatio float64
	// LoseAnswerRatio of batches is stored and then answered 500, as if the answer was lost.
	LoseAnswerRatio float64
	// Latency is added to every batch.
	Latency time.Duration
	// Reject, if set, makes the receiver reject events for which it returns a reason.
	Reject func(ev map[string]json.RawMessage) string

	verifier uplink.Verifier
	mu       sync.Mutex
	down     bool
	byID     map[string][]byte // compact JSON
	order    []Received
	stats    Stats
	file     *os.File
}

// Initialize loads stored events. Call before serving.
func (h *Handler) Initialize() error {
	if h.Logger == nil {
		h.Logger = slog.Default()
	}
	h.verifier = uplink.Verifier{Secret: h.Secret, Alg: h.Alg, MaxSkew: h.MaxSkew}
	h.byID = map[string][]byte{}
	if h.Dir == "" {
		return nil
	}
	if err := os.MkdirAll(h.Dir, 0o750); err != nil {
		return err
	}
	path := filepath.Join(h.Dir, "received.jsonl")
	if f, err := os.Open(path); err == nil {
		sc := bufio.NewScanner(f)
		sc.Buffer(make([]byte, 1<<20), 16<<20)
		for sc.Scan() {
			var r Received
			if json.Unmarshal(sc.Bytes(), &r) != nil || r.ID == "" {
				continue // a torn last line after a crash
			}
			if _, dup := h.byID[r.ID]; !dup {
				h.byID[r.ID] = compact(r.Event)
				h.order = append(h.order, r)
			}
		}
		f.Close()
		h.stats.Received = len(h.order)
	}
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o640)
	if err != nil {
		return err
	}
	h.file = f
	return nil
}

// Close closes the JSONL file.
func (h *Handler) Close() error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.file != nil {
		return h.file.Close()
	}
	return nil
}

// SetDown makes the receiver answer 503 to everything until SetDown(false).
func (h *Handler) SetDown(down bool) {
	h.mu.Lock()
	h.down = down
	h.mu.Unlock()
}

// Stats returns the counters.
func (h *Handler) Stats() Stats {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.stats
}

// Received returns accepted events in the order they first arrived.
func (h *Handler) Received() []Received {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]Received(nil), h.order...)
}

// Has reports whether id was accepted.
func (h *Handler) Has(id string) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	_, ok := h.byID[id]
	return ok
}

func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	switch {
	case r.URL.Path == "/offsite/v1/events:batch" && r.Method == http.MethodPost:
		h.batch(w, r)
	case r.URL.Path == "/offsite/v1/status" && r.Method == http.MethodGet:
		writeJSON(w, http.StatusOK, h.Stats())
	case r.URL.Path == "/offsite/v1/events" && r.Method == http.MethodGet:
		// The newest accepted events, newest first (?limit=, default 50, at most 1000), for the
		// demo: what the "province" has received.
		limit, _ := strconv.Atoi(r.URL.Query().Get("limit"))
		if limit <= 0 || limit > 1000 {
			limit = 50
		}
		h.mu.Lock()
		out := make([]Received, 0, limit)
		for i := len(h.order) - 1; i >= 0 && len(out) < limit; i-- {
			out = append(out, h.order[i])
		}
		total := len(h.order)
		h.mu.Unlock()
		writeJSON(w, http.StatusOK, map[string]any{"total": total, "events": out})
	default:
		writeErr(w, http.StatusNotFound, "not_found", "POST /offsite/v1/events:batch, GET /offsite/v1/status or GET /offsite/v1/events")
	}
}

const maxBody = 16 << 20

func (h *Handler) batch(w http.ResponseWriter, r *http.Request) {
	if h.Latency > 0 {
		time.Sleep(h.Latency)
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, maxBody+1))
	if err != nil {
		writeErr(w, http.StatusBadRequest, "bad_body", err.Error())
		return
	}
	if len(body) > maxBody {
		writeErr(w, http.StatusRequestEntityTooLarge, "too_large", "batch larger than 16 MiB")
		return
	}
	h.mu.Lock()
	down := h.down
	h.mu.Unlock()
	if down || h.FailRatio > 0 && rand.Float64() < h.FailRatio {
		h.count(func(s *Stats) { s.Injected++ })
		writeErr(w, http.StatusServiceUnavailable, "unavailable", "injected failure")
		return
	}
	if err := h.verifier.Verify(r.Header, body, time.Now()); err != nil {
		h.count(func(s *Stats) { s.Refused++ })
		code := "bad_signature"
		switch {
		case errors.Is(err, uplink.ErrSkew):
			code = "timestamp_skew"
		case errors.Is(err, uplink.ErrReplay):
			code = "replayed_nonce"
		case errors.Is(err, uplink.ErrMissingHeader):
			code = "unsigned"
		}
		writeErr(w, http.StatusUnauthorized, code, err.Error())
		return
	}
	var req struct {
		GatewayID string            `json:"gateway_id"`
		Events    []json.RawMessage `json:"events"`
	}
	if err := json.Unmarshal(body, &req); err != nil {
		writeErr(w, http.StatusBadRequest, "bad_batch", "body must be {\"gateway_id\", \"events\": [...]}: "+err.Error())
		return
	}
	if req.GatewayID == "" || req.GatewayID != r.Header.Get(uplink.HeaderGateway) {
		writeErr(w, http.StatusBadRequest, "bad_batch", "gateway_id missing or different from X-Offsite-Gateway")
		return
	}
	if len(req.Events) > uplink.MaxBatch {
		writeErr(w, http.StatusRequestEntityTooLarge, "too_many_events", fmt.Sprintf("at most %d events per batch", uplink.MaxBatch))
		return
	}
	resp := uplink.BatchResponse{Accepted: []string{}, Duplicates: []string{}, Rejected: []uplink.Rejection{}}
	var lines bytes.Buffer
	now := time.Now().UTC()
	h.mu.Lock()
	h.stats.Batches++
	for i, raw := range req.Events {
		id, reason := validate(raw)
		if id == "" {
			id = fmt.Sprintf("#%d", i)
		}
		if reason == "" && h.Reject != nil {
			var m map[string]json.RawMessage
			_ = json.Unmarshal(raw, &m)
			reason = h.Reject(m)
		}
		if reason != "" {
			resp.Rejected = append(resp.Rejected, uplink.Rejection{ID: id, Reason: reason})
			h.stats.Rejected++
			continue
		}
		c := compact(raw)
		if prev, ok := h.byID[id]; ok {
			if bytes.Equal(prev, c) {
				resp.Duplicates = append(resp.Duplicates, id)
				h.stats.Duplicates++
			} else {
				resp.Rejected = append(resp.Rejected, uplink.Rejection{ID: id, Reason: "conflicting_content"})
				h.stats.Conflicts++
				h.stats.Rejected++
			}
			continue
		}
		h.byID[id] = c
		rec := Received{ID: id, Gateway: req.GatewayID, ReceivedAt: now, Event: c}
		h.order = append(h.order, rec)
		h.stats.Received++
		resp.Accepted = append(resp.Accepted, id)
		if h.file != nil {
			b, _ := json.Marshal(rec)
			lines.Write(b)
			lines.WriteByte('\n')
		}
	}
	var werr error
	if h.file != nil && lines.Len() > 0 {
		_, werr = h.file.Write(lines.Bytes())
	}
	h.mu.Unlock()
	if werr != nil {
		h.Logger.Error("provincesim: store", "err", werr)
	}
	if h.LoseAnswerRatio > 0 && rand.Float64() < h.LoseAnswerRatio {
		h.count(func(s *Stats) { s.Injected++ })
		writeErr(w, http.StatusInternalServerError, "lost_answer", "injected failure after storing")
		return
	}
	writeJSON(w, http.StatusOK, resp)
}

// validate checks one event's required fields; it returns the id and a rejection reason.
func validate(raw json.RawMessage) (id, reason string) {
	var e struct {
		ID         *string `json:"id"`
		Type       *string `json:"type"`
		OccurredAt *string `json:"occurred_at"`
	}
	if err := json.Unmarshal(raw, &e); err != nil {
		return "", "invalid_json"
	}
	if e.ID == nil || *e.ID == "" {
		return "", "missing_id"
	}
	id = *e.ID
	if _, err := ulid.ParseStrict(id); err != nil {
		return id, "invalid_id"
	}
	if e.Type == nil || *e.Type == "" {
		return id, "missing_type"
	}
	if e.OccurredAt == nil || *e.OccurredAt == "" {
		return id, "missing_occurred_at"
	}
	if _, err := time.Parse(time.RFC3339Nano, *e.OccurredAt); err != nil {
		return id, "invalid_occurred_at"
	}
	return id, ""
}

func compact(b []byte) []byte {
	var out bytes.Buffer
	if json.Compact(&out, b) != nil {
		return append([]byte(nil), b...)
	}
	return out.Bytes()
}

func (h *Handler) count(fn func(*Stats)) {
	h.mu.Lock()
	fn(&h.stats)
	h.mu.Unlock()
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}

func writeErr(w http.ResponseWriter, code int, c, msg string) {
	writeJSON(w, code, map[string]any{"error": map[string]string{"code": c, "message": msg}})
}

// Server runs a Handler on a TCP address and can be stopped and started again on the same
// address, so tests can make the receiver refuse connections for a while.
type Server struct {
	Addr    string // "127.0.0.1:0" picks a port; after Start it holds the real address
	Handler http.Handler

	mu  sync.Mutex
	srv *http.Server
}

// Start listens and serves in the background.
func (s *Server) Start() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.srv != nil {
		return nil
	}
	var ln net.Listener
	var err error
	for i := 0; i < 50; i++ { // the port may linger briefly after Stop
		if ln, err = net.Listen("tcp", s.Addr); err == nil {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err != nil {
		return err
	}
	s.Addr = ln.Addr().String()
	s.srv = &http.Server{Handler: s.Handler, ReadHeaderTimeout: 10 * time.Second}
	go s.srv.Serve(ln) //nolint:errcheck
	return nil
}

// Stop closes the listener and every connection: clients see refused connections.
func (s *Server) Stop() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.srv != nil {
		_ = s.srv.Close()
		s.srv = nil
	}
}

// URL is the base URL to configure an uplink with.
func (s *Server) URL() string { return "http://" + s.Addr }

// FetchEvidence fetches evidence file sum from the node that sends this receiver its events
// (docs/contracts.md §9): GET {baseURL}/offsite/v1/evidence/{sha256}, signed with this
// receiver's secret and naming that node's gateway id, the way the province fetches a clip
// through the centre. The bytes are returned only when they hash to sum
// (uplink.ErrEvidenceMismatch otherwise).
func (h *Handler) FetchEvidence(ctx context.Context, baseURL, gatewayID, sum string) ([]byte, string, error) {
	alg := h.Alg
	if alg == "" {
		alg = uplink.AlgSM3
	}
	var buf bytes.Buffer
	ctype, _, err := uplink.Fetch{BaseURL: baseURL, GatewayID: gatewayID, Alg: alg, Secret: h.Secret}.Get(ctx, sum, &buf)
	if err != nil {
		return nil, "", err
	}
	h.count(func(s *Stats) { s.EvidenceFetched++ })
	return buf.Bytes(), ctype, nil
}
