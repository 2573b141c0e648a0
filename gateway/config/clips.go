package config

import (
	"fmt"
	"time"
)

// Clips configures event clips (streams.Clips, docs/contracts.md §9): a pre-roll of the last
// seconds of each camera with clips, kept without decoding, and an MP4 clip around every event
// of an enabled type, stored as evidence and announced with an evidence.added event.
type Clips struct {
	// Enabled turns clips on for Cameras (empty: every camera of this gateway). Cameras with
	// clips are pulled all the time.
	Enabled bool     `yaml:"enabled"`
	Cameras []string `yaml:"cameras"`
	// EventTypes get a clip: exact types, or prefixes ending in ".".
	EventTypes []string `yaml:"event_types"`
	// CameraEventTypes overrides EventTypes per camera id.
	CameraEventTypes map[string][]string `yaml:"camera_event_types"`
	// Links give events of other devices (a sensor) the clip of cameras: the kitchen's gas
	// detector → the kitchen camera.
	Links []ClipLink `yaml:"links"`
	// PreRoll is kept before the moment, PostRoll recorded after it.
	PreRoll  time.Duration `yaml:"pre_roll"`
	PostRoll time.Duration `yaml:"post_roll"`
	// MaxCameraMB is one camera's pre-roll memory, MaxTotalMB all of them (MiB).
	MaxCameraMB int `yaml:"max_camera_mb"`
	MaxTotalMB  int `yaml:"max_total_mb"`
	// MaxClip bounds one clip that overlapping events keep extending.
	MaxClip time.Duration `yaml:"max_clip"`
	// RecordingMaxMinutes bounds a manual recording (取证录像).
	RecordingMaxMinutes int `yaml:"recording_max_minutes"`
}

// ClipLink names the cameras whose clip an event of Device gets.
type ClipLink struct {
	Device  string   `yaml:"device"`
	Cameras []string `yaml:"cameras"`
}

func defaultClips() Clips {
	return Clips{Cameras: []string{}, CameraEventTypes: map[string][]string{}, Links: []ClipLink{},
		EventTypes:  []string{"video.tamper", "video.staff_absent", "video.crowding", "sensor.threshold"},
		PreRoll:     10 * time.Second,
		PostRoll:    20 * time.Second,
		MaxCameraMB: 3, MaxTotalMB: 256, MaxClip: 10 * time.Minute, RecordingMaxMinutes: 10}
}

func (c Clips) validate(bad func(key, format string, args ...any)) {
	if c.PreRoll < 0 || c.PreRoll > 5*time.Minute {
		bad("clips.pre_roll", "must be between 0s and 5m, got %s", c.PreRoll)
	}
	if c.PostRoll <= 0 || c.PostRoll > 10*time.Minute {
		bad("clips.post_roll", "must be between 1s and 10m, got %s", c.PostRoll)
	}
	if c.MaxCameraMB < 1 || c.MaxTotalMB < c.MaxCameraMB {
		bad("clips.max_camera_mb", "must be at least 1, and max_total_mb at least as large (got %d and %d)", c.MaxCameraMB, c.MaxTotalMB)
	}
	if c.MaxClip < c.PreRoll+c.PostRoll {
		bad("clips.max_clip", "must be at least pre_roll + post_roll, got %s", c.MaxClip)
	}
	if c.RecordingMaxMinutes < 1 || c.RecordingMaxMinutes > 120 {
		bad("clips.recording_max_minutes", "must be between 1 and 120, got %d", c.RecordingMaxMinutes)
	}
	for i, l := range c.Links {
		if l.Device == "" || len(l.Cameras) == 0 {
			bad(fmt.Sprintf("clips.links[%d]", i), "needs a device and at least one camera")
		}
	}
}
