package main

import (
	"context"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/offsite-gw/offsite/api"
	"github.com/offsite-gw/offsite/devices"
	"github.com/offsite-gw/offsite/events/uplink"
	"github.com/offsite-gw/offsite/internal/audit"
	"github.com/offsite-gw/offsite/streams"
)

// The two ends of a pull across the cascade (docs/contracts.md §7): the centre names the user
// whose viewing opened a pull in a signed request header; the site verifies it and audits the
// pull under the centre's name.

// centreSecret is the enrolment secret this site shares with its centre ("" without one).
func (g *gateway) centreSecret() string {
	secret := ""
	for _, u := range g.cfg.Uplinks {
		if u.Kind != uplink.KindCentre {
			continue
		}
		secret = u.Secret
		if secret == "" && u.SecretFile != "" {
			if b, err := os.ReadFile(u.SecretFile); err == nil {
				secret = strings.TrimSpace(string(b))
			}
		}
	}
	return secret
}

// authorizeViewer is the Video handler's Authorize: the API's viewer, remembered per camera
// so that a pull this viewing opens at a site names them.
func (v *video) authorizeViewer(r *http.Request, camera string) (string, error) {
	user, err := api.VideoViewer(r, camera)
	if err == nil {
		v.mu.Lock()
		if v.viewers == nil {
			v.viewers = map[string]string{}
		}
		v.viewers[camera] = user
		v.mu.Unlock()
	}
	return user, err
}

// pullHeader is the manager's PullHeader at a centre: for a site gateway's camera, the signed
// on-behalf header naming this centre and the last viewer who asked for it; the centre's own
// audit records the pull too.
func (v *video) pullHeader(camera string) map[string]string {
	v.mu.Lock()
	child, user := v.children[camera], v.viewers[camera]
	v.mu.Unlock()
	if !child || v.g.gateways == nil {
		return nil
	}
	if user == "" {
		user = "system"
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	cd, _, err := v.g.gateways.ChildDevice(ctx, "", camera)
	if err != nil {
		return nil
	}
	cr, err := v.g.gateways.Credentials(ctx, cd.Gateway)
	if err != nil {
		return nil
	}
	_ = v.g.audit.Record(ctx, audit.Entry{Actor: user, Action: "camera.pull", Target: camera, Result: "ok",
		Detail: "pulled from site gateway " + cd.Gateway + " for viewer " + user})
	return map[string]string{devices.OnBehalfHeader: devices.SignOnBehalf(cr.Secret, v.g.cfg.GatewayID, camera, user, time.Now())}
}

// verifyPull is the re-serve's VerifyPull at a site: a pull by the centre that states the
// centre user it is opened for must sign it with the enrolment secret (the audit of the pull,
// onPull, then names the centre and that user); a statement that does not verify refuses the
// pull and is audited. Without a statement the pull is the centre's alone (an older centre).
func (v *video) verifyPull(p streams.PullRequest) (streams.PullClaim, error) {
	hv := p.Header[devices.OnBehalfHeader]
	if len(hv) == 0 {
		return streams.PullClaim{}, nil
	}
	secret := v.g.centreSecret()
	if secret == "" {
		return streams.PullClaim{}, nil // no centre: the header means nothing here
	}
	centre, user, err := devices.VerifyOnBehalf([]byte(secret), p.Camera, hv[0], time.Now())
	if err != nil {
		_ = v.g.audit.Record(context.Background(), audit.Entry{Actor: "rtsp:" + p.Consumer, Action: "camera.pull.start", Target: p.Camera,
			IP: p.RemoteAddr, Result: "denied", Detail: err.Error()})
		return streams.PullClaim{}, err
	}
	return streams.PullClaim{Origin: centre, User: user}, nil
}

// pullAudit is the audit record of a re-serve pull; one a centre opened for one of its users
// names the centre as actor and the user in its detail.
func pullAudit(pe streams.PullEvent) audit.Entry {
	e := api.PullAudit(pe)
	if pe.Origin != "" {
		e.Actor = "centre:" + pe.Origin
		note := "pulled by centre " + pe.Origin + " on behalf of centre user " + pe.OnBehalfOf
		if e.Detail != "" {
			note += "; " + e.Detail
		}
		e.Detail = note
	}
	return e
}
