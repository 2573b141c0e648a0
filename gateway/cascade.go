package main

import (
	"context"
	"errors"
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

// onPull is the re-serve's OnPull at a site: a pull by the centre is audited as the centre,
// naming the centre user it states; a statement that does not verify refuses the pull.
func (v *video) onPull(p streams.ReservePull) error {
	if p.User != devices.CascadeUser {
		return nil
	}
	e := audit.Entry{Actor: "centre", Action: "camera.pull", Target: p.Camera, IP: p.RemoteAddr, Result: "ok",
		Detail: "pulled by the centre; viewer not stated"}
	var err error
	if hv := p.Header[devices.OnBehalfHeader]; len(hv) > 0 {
		var centre, user string
		secret := v.g.centreSecret()
		if secret == "" {
			err = errors.New("no centre uplink")
		} else {
			centre, user, err = devices.VerifyOnBehalf([]byte(secret), p.Camera, hv[0], time.Now())
		}
		if err != nil {
			e.Result, e.Detail = "denied", err.Error()
		} else {
			e.Actor, e.Detail = "centre:"+centre, "pulled by centre "+centre+" on behalf of centre user "+user
		}
	}
	_ = v.g.audit.Record(context.Background(), e)
	return err
}
