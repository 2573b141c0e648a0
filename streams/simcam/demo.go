package simcam

import (
	_ "embed"
	"time"
)

// Demo clips: 640x360, 25 fps, 10 s, H.264 baseline without B-frames, made with ffmpeg's lavfi
// test sources (see README). Keyframe intervals differ on purpose: 2 s, 3 s, 4 s and 2.4 s.
var (
	//go:embed clips/hall-entrance.h264
	clipHallEntrance []byte
	//go:embed clips/service-window.h264
	clipServiceWindow []byte
	//go:embed clips/waiting-area.h264
	clipWaitingArea []byte
	//go:embed clips/counter-empties.h264
	clipCounterEmpties []byte
	//go:embed clips/goes-black.h264
	clipGoesBlack []byte
	//go:embed clips/analytics-settings.json
	analyticsSettings []byte
	//go:embed clips/back-office.h264
	clipBackOffice []byte
)

// DemoCameras returns the demo's four cameras. "back-office" reboots every 3 minutes for 20 s,
// so the dashboard shows signal lost → back online; "service-window" has G.711 audio.
func DemoCameras() []Camera {
	return []Camera{
		{Path: "hall-entrance", Clip: clipHallEntrance, FPS: 25},
		{Path: "service-window", Clip: clipServiceWindow, FPS: 25, Audio: true},
		{Path: "waiting-area", Clip: clipWaitingArea, FPS: 25},
		{Path: "back-office", Clip: clipBackOffice, FPS: 25, OutageEvery: 3 * time.Minute, OutageFor: 20 * time.Second},
	}
}

// AnalyticsDemoCameras returns two cameras made for the video analytics demo: "counter-empties"
// (a clerk leaves counter w1 for 40 s of every minute) and "goes-black" (the picture is black
// for 20 s of every 40 s, as if the lens were covered).
func AnalyticsDemoCameras() []Camera {
	return []Camera{
		{Path: "counter-empties", Clip: clipCounterEmpties, FPS: 25},
		{Path: "goes-black", Clip: clipGoesBlack, FPS: 25},
	}
}

// AnalyticsDemoSettings returns the analytics settings (JSON, lease.CameraSettings) that make
// the analytics demo cameras raise their alerts, keyed by camera path.
func AnalyticsDemoSettings() []byte { return analyticsSettings }
