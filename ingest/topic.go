package ingest

import (
	"strings"
)

// ExpandTopic fills a profile topic template ("offsite/{site}/{device}/up") with ids.
func ExpandTopic(template, site, device string) string {
	return strings.NewReplacer("{site}", site, "{device}", device).Replace(template)
}

// TopicFilter turns a template into the MQTT filter that matches it for every site and
// device: each level holding a placeholder becomes "+".
func TopicFilter(template string) string {
	levels := strings.Split(template, "/")
	for i, l := range levels {
		if strings.Contains(l, "{") {
			levels[i] = "+"
		}
	}
	return strings.Join(levels, "/")
}

// ParseTopic matches topic against template and returns the site and device ids it names.
// A placeholder matches the whole of one non-empty topic level that holds no wildcard; a
// level may mix text and one placeholder ("dev-{device}"). ok is false when the topic does not
// have the template's shape.
func ParseTopic(template, topic string) (site, device string, ok bool) {
	tl := strings.Split(template, "/")
	pl := strings.Split(topic, "/")
	if len(tl) != len(pl) {
		return "", "", false
	}
	for i, t := range tl {
		p := pl[i]
		open := strings.IndexByte(t, '{')
		if open < 0 {
			if t != p {
				return "", "", false
			}
			continue
		}
		end := strings.IndexByte(t[open:], '}')
		if end < 0 {
			return "", "", false
		}
		name := t[open+1 : open+end]
		prefix, suffix := t[:open], t[open+end+1:]
		if strings.ContainsAny(suffix, "{}") || len(p) <= len(prefix)+len(suffix) ||
			!strings.HasPrefix(p, prefix) || !strings.HasSuffix(p, suffix) {
			return "", "", false
		}
		v := p[len(prefix) : len(p)-len(suffix)]
		if strings.ContainsAny(v, "+#") {
			return "", "", false
		}
		switch name {
		case "site":
			if site != "" && site != v {
				return "", "", false
			}
			site = v
		case "device":
			if device != "" && device != v {
				return "", "", false
			}
			device = v
		default:
			return "", "", false
		}
	}
	return site, device, true
}

// FilterCovers reports whether MQTT filter allowed matches every topic that requested (a
// topic or a filter, optionally $share/GROUP/…) can match.
func FilterCovers(allowed, requested string) bool {
	if rest, ok := strings.CutPrefix(requested, "$share/"); ok {
		if i := strings.IndexByte(rest, '/'); i >= 0 {
			requested = rest[i+1:]
		}
	}
	a := strings.Split(allowed, "/")
	r := strings.Split(requested, "/")
	for i, l := range a {
		if l == "#" {
			return i == len(a)-1
		}
		if i >= len(r) {
			return false
		}
		switch {
		case r[i] == "#":
			return false
		case l == "+":
		case l != r[i]:
			return false
		}
	}
	return len(a) == len(r)
}
