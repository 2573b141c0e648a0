package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/offsite-gw/offsite/api"
	"github.com/offsite-gw/offsite/devices"
	"github.com/offsite-gw/offsite/events/uplink"
	"github.com/offsite-gw/offsite/internal/errs"
)

// recordingGate lets this site's centre (the receivers of its uplinks of kind centre, and only
// those) start and list recordings of its cameras (docs/contracts.md §9); nil without one.
func (g *gateway) recordingGate() *uplink.EvidenceGate {
	var peers []uplink.EvidencePeer
	for _, p := range g.uplinks.EvidencePeers() {
		if p.Kind == uplink.KindCentre {
			peers = append(peers, p)
		}
	}
	if len(peers) == 0 {
		return nil
	}
	return &uplink.EvidenceGate{GatewayID: g.cfg.GatewayID, Peers: peers}
}

func (g *gateway) recordingForwarder() api.RecordingForwarder {
	if g.gateways == nil {
		return nil
	}
	return &recordingForwarder{gateways: g.gateways, client: &http.Client{Timeout: 20 * time.Second}}
}

// recordingForwarder asks a site gateway below this centre to record one of its cameras, over
// the signed /offsite/v1/cameras/{id}/recordings, with the gateway's address and enrolment
// secret from the registry (as the evidence fetch does).
type recordingForwarder struct {
	gateways *devices.GatewayStore
	client   *http.Client
}

// StartAt implements api.RecordingForwarder.
func (f *recordingForwarder) StartAt(ctx context.Context, gateway, camera string, req api.PeerRecordingRequest) (api.ForwardedRecording, error) {
	body, err := json.Marshal(req)
	if err != nil {
		return api.ForwardedRecording{}, err
	}
	var out api.ForwardedRecording
	err = f.do(ctx, gateway, camera, http.MethodPost, body, &out)
	return out, err
}

// RecordingsAt implements api.RecordingForwarder.
func (f *recordingForwarder) RecordingsAt(ctx context.Context, gateway, camera string) (api.ForwardedRecordings, error) {
	var out api.ForwardedRecordings
	err := f.do(ctx, gateway, camera, http.MethodGet, nil, &out)
	return out, err
}

func (f *recordingForwarder) do(ctx context.Context, gateway, camera, method string, body []byte, out any) error {
	gw, err := f.gateways.Get(ctx, gateway)
	if err != nil {
		return err
	}
	cred, err := f.gateways.Credentials(ctx, gateway)
	if err != nil {
		return err
	}
	if cred.Disabled {
		return errs.E(errs.KindConflict, "gateway_disabled", "site gateway %s is disabled at this centre; its cameras cannot be recorded from here", gateway)
	}
	if gw.BaseURL == "" {
		return errs.E(errs.KindConflict, "record_at_site",
			"camera %s is on site gateway %s, whose base URL is not set here (站点网关, PUT /api/v1/gateways/%s): start the recording at that gateway", camera, gateway, gateway)
	}
	u := strings.TrimRight(gw.BaseURL, "/") + api.PeerRecordingPath(url.PathEscape(camera))
	hreq, err := http.NewRequestWithContext(ctx, method, u, bytes.NewReader(body))
	if err != nil {
		return errs.Wrap(errs.KindConflict, "record_at_site", err, "site gateway %s has a base URL this centre cannot use (%s): start the recording at that gateway", gateway, gw.BaseURL)
	}
	if body != nil {
		hreq.Header.Set("Content-Type", "application/json")
	}
	alg := cred.Alg
	if alg == "" {
		alg = uplink.AlgSM3 // as the evidence fetch and the uplink default
	}
	if err := uplink.SignRequest(hreq, gateway, alg, cred.Secret, time.Now(), uplink.RequestSigned(method, hreq.URL.Path, body)); err != nil {
		return err
	}
	resp, err := f.client.Do(hreq)
	if err != nil {
		return errs.Wrap(errs.KindUnavailable, "site_unreachable", err, "site gateway %s (%s) cannot be reached: %v", gateway, gw.BaseURL, errors.Unwrap(err))
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return errs.Wrap(errs.KindUnavailable, "site_unreachable", err, "site gateway %s stopped answering: %v", gateway, err)
	}
	if resp.StatusCode/100 == 2 {
		if err := json.Unmarshal(b, out); err != nil {
			return errs.Wrap(errs.KindUnavailable, "site_error", err, "site gateway %s answered %d with a body this centre cannot read", gateway, resp.StatusCode)
		}
		return nil
	}
	return siteRefusal(gateway, resp.StatusCode, b)
}

// siteRefusal turns a site's error answer into the centre's: the site's own code and message
// for what the officer can fix (400, 404, 409), 503 site_refused when the site does not accept
// this centre's signature (an enrolment problem, not the officer's), 503 site_error otherwise.
func siteRefusal(gateway string, status int, body []byte) error {
	var eb struct {
		Error struct{ Code, Message string } `json:"error"`
	}
	_ = json.Unmarshal(body, &eb)
	code, msg := eb.Error.Code, eb.Error.Message
	if msg == "" {
		msg = strings.TrimSpace(string(body))
		if len(msg) > 300 {
			msg = msg[:300]
		}
	}
	site := fmt.Sprintf("site gateway %s: %s", gateway, msg)
	switch {
	case status == http.StatusUnauthorized || status == http.StatusForbidden:
		return errs.E(errs.KindUnavailable, "site_refused", "site gateway %s refused this centre's signature (%d %s): check that its uplink to this centre has the secret enrolled here", gateway, status, code)
	case status == http.StatusNotFound && (code == "" || code == "not_found"):
		return errs.E(errs.KindUnavailable, "site_error", "site gateway %s does not offer recordings to its centre (404): it runs an older version or has no uplink of kind centre", gateway)
	case code == "":
		return errs.E(errs.KindUnavailable, "site_error", "site gateway %s answered %d: %s", gateway, status, msg)
	case status == http.StatusBadRequest:
		return errs.E(errs.KindInvalid, code, "%s", site)
	case status == http.StatusNotFound:
		return errs.E(errs.KindNotFound, code, "%s", site)
	case status == http.StatusConflict:
		return errs.E(errs.KindConflict, code, "%s", site)
	default:
		return errs.E(errs.KindUnavailable, "site_error", "site gateway %s answered %d %s: %s", gateway, status, code, msg)
	}
}
