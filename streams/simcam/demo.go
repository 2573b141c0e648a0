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
