package uplink

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/offsite-gw/offsite/events"
	"github.com/offsite-gw/offsite/events/event"
)

// Evidence follows its event upward (docs/contracts.md §9): whoever receives a node's events
// may fetch the evidence files they carry with GET {base}/offsite/v1/evidence/{sha256}, signed
// with the headers of §6 and the secret of the link the events travel over, in the other
// direction. X-Offsite-Gateway names the node asked (the one whose link's secret signs); the
// signed "body" is the request line "GET /offsite/v1/evidence/{sha256}", so a signature is
// good for one file only.

// EvidencePath is the path prefix of a signed evidence fetch.
const EvidencePath = "/offsite/v1/evidence/"

// Errors of a fetch.
var (
	// ErrEvidenceMismatch: the bytes received do not hash to the sha256 asked for.
	ErrEvidenceMismatch = errors.New("evidence: received bytes do not match the sha256")
	// ErrEvidenceTooLarge: the answer is larger than the fetch allows.
	ErrEvidenceTooLarge = errors.New("evidence: file larger than allowed")
)

// FetchSigned is what a signed evidence fetch signs in place of a body.
func FetchSigned(method, path string) []byte { return []byte(method + " " + path) }

// RequestSigned is what a signed request from a receiver to this node signs: the request line,
// and for a request with a body a newline and the body, so a signature is good for one path
// and one body only. Without a body it is FetchSigned.
func RequestSigned(method, path string, body []byte) []byte {
	if len(body) == 0 {
		return FetchSigned(method, path)
	}
	out := make([]byte, 0, len(method)+len(path)+2+len(body))
	out = append(out, method...)
	out = append(out, ' ')
	out = append(out, path...)
	out = append(out, '\n')
	return append(out, body...)
}

// ParseEvidencePath returns the sha256 of a fetch path, /offsite/v1/evidence/{sha256} with
// 64 lower-case hex digits; anything else is an error.
func ParseEvidencePath(path string) (string, error) {
	sum, ok := strings.CutPrefix(path, EvidencePath)
	if !ok || !event.IsHex64(sum) {
		return "", fmt.Errorf("evidence path %q: want %s<64 lower-case hex digits>", truncate(path, 120), EvidencePath)
	}
	return sum, nil
}

// Fetch is one signed evidence fetch.
type Fetch struct {
	// BaseURL of the node asked (a site gateway's, or a centre's).
	BaseURL string
	// GatewayID of the node asked: the id its link signs as.
	GatewayID string
	Alg       string // default hmac-sm3
	Secret    []byte
	// MaxBytes bounds the file (default 64 MiB).
	MaxBytes int64
	Client   *http.Client // default: 60 s timeout
}

// Get fetches the file sum into w and checks its hash as it streams. It returns the content
// type the node sent and the bytes written. On ErrEvidenceMismatch (or any error) what was
// written to w must be thrown away.
func (f Fetch) Get(ctx context.Context, sum string, w io.Writer) (contentType string, n int64, err error) {
	if !event.IsHex64(sum) {
		return "", 0, fmt.Errorf("evidence: %q is not a sha256", truncate(sum, 80))
	}
	if f.BaseURL == "" {
		return "", 0, fmt.Errorf("evidence: no base URL for gateway %s (set it in its enrolment)", f.GatewayID)
	}
	alg := f.Alg
	if alg == "" {
		alg = AlgSM3
	}
	limit := f.MaxBytes
	if limit <= 0 {
		limit = 64 << 20
	}
	client := f.Client
	if client == nil {
		client = &http.Client{Timeout: 60 * time.Second}
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimRight(f.BaseURL, "/")+EvidencePath+sum, nil)
	if err != nil {
		return "", 0, fmt.Errorf("evidence: %w", err)
	}
	if err := SignRequest(req, f.GatewayID, alg, f.Secret, time.Now(), FetchSigned(http.MethodGet, req.URL.Path)); err != nil {
		return "", 0, err
	}
	resp, err := client.Do(req)
	if err != nil {
		return "", 0, fmt.Errorf("evidence: fetch from %s: %w", f.GatewayID, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 2048))
		return "", 0, &FetchStatusError{Gateway: f.GatewayID, Status: resp.StatusCode, Body: strings.TrimSpace(string(msg))}
	}
	if resp.ContentLength > limit {
		return "", 0, fmt.Errorf("%w: %d bytes from %s, at most %d", ErrEvidenceTooLarge, resp.ContentLength, f.GatewayID, limit)
	}
	h := sha256.New()
	n, err = io.Copy(io.MultiWriter(w, h), io.LimitReader(resp.Body, limit+1))
	if err != nil {
		return "", n, fmt.Errorf("evidence: read from %s: %w", f.GatewayID, err)
	}
	if n > limit {
		return "", n, fmt.Errorf("%w: more than %d bytes from %s", ErrEvidenceTooLarge, limit, f.GatewayID)
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != sum {
		return "", n, fmt.Errorf("%w: %s sent %d bytes hashing to %s for %s", ErrEvidenceMismatch, f.GatewayID, n, got, sum)
	}
	return resp.Header.Get("Content-Type"), n, nil
}

// FetchStatusError is a non-200 answer to a fetch.
type FetchStatusError struct {
	Gateway string
	Status  int
	Body    string
}

func (e *FetchStatusError) Error() string {
	return fmt.Sprintf("evidence: %s answered %d: %s", e.Gateway, e.Status, truncate(e.Body, 300))
}

// EvidencePeer is a receiver of this node's events that may fetch their evidence: the other
// end of an uplink of kind offsite or centre, signing with that uplink's secret.
type EvidencePeer struct {
	Name   string // the uplink's name
	Kind   string // the uplink's kind: KindOffsite or KindCentre
	Alg    string
	Secret []byte
	// Filter is the uplink's: the peer may fetch only files that an event it is sent carries.
	Filter events.Filter
}

// EvidenceGate checks signed evidence fetches from the receivers of this node's uplinks.
type EvidenceGate struct {
	// GatewayID is this node's id: X-Offsite-Gateway must name it.
	GatewayID string
	Peers     []EvidencePeer
	MaxSkew   time.Duration // default 5 minutes

	nonces NonceCache
}

// Verify checks a fetch of path (method GET) and returns the peer whose secret signed it.
// Errors wrap ErrMissingHeader, ErrBadSignature, ErrAlgorithm, ErrSkew or ErrReplay.
func (g *EvidenceGate) Verify(h http.Header, method, path string, now time.Time) (EvidencePeer, error) {
	return g.VerifySigned(h, FetchSigned(method, path), now)
}

// VerifySigned checks a signed request whose signed bytes are body (RequestSigned) and
// returns the peer whose secret signed it; a nonce is good once. Errors as Verify.
func (g *EvidenceGate) VerifySigned(h http.Header, body []byte, now time.Time) (EvidencePeer, error) {
	skew := g.MaxSkew
	if skew <= 0 {
		skew = 5 * time.Minute
	}
	if h.Get(HeaderGateway) == "" {
		return EvidencePeer{}, ErrMissingHeader
	}
	if h.Get(HeaderGateway) != g.GatewayID {
		return EvidencePeer{}, fmt.Errorf("%w: X-Offsite-Gateway %q is not this node (%s)", ErrBadSignature, truncate(h.Get(HeaderGateway), 80), g.GatewayID)
	}
	var last error = ErrBadSignature
	badSig := false
	for _, p := range g.Peers {
		err := Verify(p.Secret, p.Alg, h, body, now, skew)
		if err == nil {
			g.nonces.TTL = 2 * skew
			if !g.nonces.Use(p.Name+"|"+h.Get(HeaderNonce), now) {
				return EvidencePeer{}, ErrReplay
			}
			return p, nil
		}
		if !errors.Is(err, ErrBadSignature) && !errors.Is(err, ErrAlgorithm) {
			return EvidencePeer{}, err // missing header, skew: the same for every secret
		}
		if !badSig { // a MAC that did not verify says more than another peer's algorithm
			last, badSig = err, errors.Is(err, ErrBadSignature)
		}
	}
	return EvidencePeer{}, last
}

// EvidencePeers are the uplinks whose receivers may fetch evidence: kind offsite or centre,
// with a secret.
func (s *Set) EvidencePeers() []EvidencePeer {
	var out []EvidencePeer
	for _, u := range s.order {
		if (u.Kind == KindOffsite || u.Kind == KindCentre) && len(u.secret) > 0 {
			out = append(out, EvidencePeer{Name: u.Name, Kind: u.Kind, Alg: u.Alg, Secret: u.secret, Filter: u.Filter})
		}
	}
	return out
}
