package profiles

import (
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"sort"
	"strings"
)

//go:embed builtin/*.yml
var builtinFS embed.FS

// Embedded returns the profiles shipped in the binary (firmware-profiles/builtin), sorted by
// id. Their Source is "embedded:NAME.yml".
func Embedded() ([]Profile, error) {
	names, err := fs.Glob(builtinFS, "builtin/*.yml")
	if err != nil {
		return nil, err
	}
	var (
		out  []Profile
		errs []error
	)
	for _, n := range names {
		data, err := builtinFS.ReadFile(n)
		if err != nil {
			return nil, err
		}
		p, perrs := parse("embedded:"+path.Base(n), data)
		if len(perrs) > 0 {
			errs = append(errs, perrs...)
			continue
		}
		out = append(out, p)
	}
	out, derrs := checkDuplicates(out)
	errs = append(errs, derrs...)
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return out, nil
}

// Override records a user profile that replaced an embedded one with the same id.
type Override struct {
	ID       string
	Embedded string // Source of the replaced profile
	User     string // Source of the profile now in use
}

// Registry is the set of profiles a gateway knows. It is read-only after NewRegistry, so it
// may be shared between goroutines; Get and List return copies.
type Registry struct {
	byID      map[string]Profile
	sorted    []Profile
	overrides []Override
}

// NewRegistry loads the embedded profiles (if embedded) and then the user profiles in
// userDir (if not empty). A user profile with the id of an embedded one replaces it; each such
// replacement is listed by Overrides so the caller can log it. Any invalid file, or an id
// defined twice in userDir, fails the whole registry with every problem listed: a gateway
// should not start on half its profiles.
func NewRegistry(embedded bool, userDir string) (*Registry, error) {
	r := &Registry{byID: map[string]Profile{}}
	var errs []error
	if embedded {
		ps, err := Embedded()
		if err != nil {
			errs = append(errs, err)
		}
		for _, p := range ps {
			r.byID[p.ID] = p
		}
	}
	if userDir != "" {
		ps, uerrs := loadDir(userDir)
		errs = append(errs, uerrs...)
		for _, p := range ps {
			if old, ok := r.byID[p.ID]; ok {
				r.overrides = append(r.overrides, Override{ID: p.ID, Embedded: old.Source, User: p.Source})
			}
			r.byID[p.ID] = p
		}
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	for _, p := range r.byID {
		r.sorted = append(r.sorted, p)
	}
	sort.Slice(r.sorted, func(i, j int) bool { return r.sorted[i].ID < r.sorted[j].ID })
	return r, nil
}

// List returns every profile, sorted by id.
func (r *Registry) List() []Profile {
	out := make([]Profile, len(r.sorted))
	for i, p := range r.sorted {
		out[i] = p.Clone()
	}
	return out
}

// Get returns the profile with id.
func (r *Registry) Get(id string) (Profile, bool) {
	p, ok := r.byID[id]
	if !ok {
		return Profile{}, false
	}
	return p.Clone(), true
}

// Overrides lists the embedded profiles replaced by user files.
func (r *Registry) Overrides() []Override { return append([]Override(nil), r.overrides...) }

// Firmware check results.
const (
	FirmwareOK      = "ok"
	FirmwareBad     = "bad"
	FirmwareUnknown = "unknown"
)

// FirmwareCheck says whether a device's firmware version is one its profile covers.
type FirmwareCheck struct {
	Status string `json:"status"` // "ok" | "bad" | "unknown"
	Reason string `json:"reason,omitempty"`
}

// CheckFirmware checks version against the firmware list of profile profileID. An unknown
// profile gives "unknown".
func (r *Registry) CheckFirmware(profileID, version string) FirmwareCheck {
	p, ok := r.byID[profileID]
	if !ok {
		return FirmwareCheck{Status: FirmwareUnknown, Reason: fmt.Sprintf("no profile %q", profileID)}
	}
	return p.CheckFirmware(version)
}

// CheckFirmware checks version against the profile: "bad" if it matches a known-bad pattern
// (this wins over Supported), "ok" if it matches a supported one, else "unknown".
func (p Profile) CheckFirmware(version string) FirmwareCheck {
	v := strings.TrimSpace(version)
	if v == "" {
		return FirmwareCheck{Status: FirmwareUnknown, Reason: "the device reports no firmware version"}
	}
	for _, b := range p.Firmware.Bad {
		if matchVersion(b.Version, v) {
			return FirmwareCheck{Status: FirmwareBad, Reason: b.Reason}
		}
	}
	for _, s := range p.Firmware.Supported {
		if matchVersion(s, v) {
			return FirmwareCheck{Status: FirmwareOK}
		}
	}
	return FirmwareCheck{Status: FirmwareUnknown, Reason: fmt.Sprintf("firmware %s is not among the versions profile %s supports (%s)",
		v, p.ID, strings.Join(p.Firmware.Supported, ", "))}
}

// matchVersion matches an exact pattern or one with a trailing "*" (prefix match).
func matchVersion(pattern, v string) bool {
	if prefix, ok := strings.CutSuffix(pattern, "*"); ok {
		return strings.HasPrefix(v, prefix)
	}
	return pattern == v
}

// Metric returns the declared metric called name.
func (p Profile) Metric(name string) (Metric, bool) {
	for _, m := range p.Metrics {
		if m.Name == name {
			return m, true
		}
	}
	return Metric{}, false
}

// Clone returns a deep copy of p, so the copy can be changed without touching p.
func (p Profile) Clone() Profile {
	c := p
	c.Models = append([]string(nil), p.Models...)
	c.Firmware.Supported = append([]string(nil), p.Firmware.Supported...)
	c.Firmware.Bad = append([]BadVersion(nil), p.Firmware.Bad...)
	if p.MQTT != nil {
		m := *p.MQTT
		c.MQTT = &m
	}
	if p.Decoder != nil {
		d := *p.Decoder
		d.Fields = append([]Field(nil), p.Decoder.Fields...)
		for i := range d.Fields {
			if b := d.Fields[i].Bit; b != nil {
				v := *b
				d.Fields[i].Bit = &v
			}
		}
		c.Decoder = &d
	}
	c.Metrics = append([]Metric(nil), p.Metrics...)
	for i := range c.Metrics {
		c.Metrics[i].Min = clonePtr(c.Metrics[i].Min)
		c.Metrics[i].Max = clonePtr(c.Metrics[i].Max)
	}
	c.Rules = append([]Rule(nil), p.Rules...)
	if p.RTSP != nil {
		r := *p.RTSP
		c.RTSP = &r
	}
	return c
}

func clonePtr(f *float64) *float64 {
	if f == nil {
		return nil
	}
	v := *f
	return &v
}
