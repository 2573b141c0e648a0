package api

import (
	"fmt"
	"time"

	"github.com/offsite-gw/offsite/internal/audit"
	"github.com/offsite-gw/offsite/streams"
)

// ViewingAudit is the audit record of a WebRTC viewing session's start or end (the video
// relay's WHEP.OnSession): camera.view.start by the viewer; camera.view.end by whoever ended
// it — the viewer, or the administrator who ended someone else's session (named in the
// detail with the viewer) — or by the viewer when the session ended by itself.
func ViewingAudit(se streams.SessionEvent) audit.Entry {
	e := audit.Entry{Actor: se.User, Action: "camera.view." + se.Kind, Target: se.Camera, IP: se.RemoteAddr, Result: "ok"}
	if se.Kind != "end" {
		e.Detail = "session " + se.ID
		return e
	}
	e.Detail = fmt.Sprintf("session %s from %s to %s (%s), reason: %s, packets sent %d, dropped %d", se.ID,
		se.Start.Format(time.RFC3339), se.End.Format(time.RFC3339), se.End.Sub(se.Start).Round(time.Second), se.Reason, se.PacketsSent, se.PacketsDropped)
	if se.EndedBy != "" && se.EndedBy != se.User {
		e.Actor, e.IP = se.EndedBy, se.EndedByAddr
		e.Detail = "ended the session of viewer " + se.User + " (" + se.RemoteAddr + "); " + e.Detail
	}
	return e
}

// PullAudit is the audit record of a reader's session on the RTSP re-serve (Reserve.OnPull):
// camera.pull.start and camera.pull.end, by "rtsp:" and the RTSP username.
func PullAudit(pe streams.PullEvent) audit.Entry {
	e := audit.Entry{Actor: "rtsp:" + pe.User, Action: "camera.pull." + pe.Kind, Target: pe.Camera, IP: pe.RemoteAddr, Result: "ok"}
	if pe.Kind == "end" {
		e.Detail = fmt.Sprintf("from %s to %s (%s), %d bytes sent", pe.Start.Format(time.RFC3339), pe.End.Format(time.RFC3339),
			pe.End.Sub(pe.Start).Round(time.Second), pe.BytesSent)
	}
	return e
}
