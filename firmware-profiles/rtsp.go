package profiles

import (
	"fmt"
	"net"
	"strconv"
	"strings"
)

// DefaultRTSPPort is used when neither the device nor the profile gives a port.
const DefaultRTSPPort = 554

// URLParams fill the placeholders of an RTSP template.
type URLParams struct {
	Host    string // IP or name; an IPv6 address is bracketed for you
	Port    int    // 0: the profile's default_port, else 554
	Channel int    // 0: channel 1
	Path    string // {path}, for templates such as generic-rtsp's rtsp://{host}:{port}{path}
}

// URL builds the RTSP URL of stream "main" or "sub" of a camera with profile p.
// Credentials are not part of it; streams/ adds them.
func URL(p Profile, stream, host string, port, channel int) (string, error) {
	return ExpandURL(p, stream, URLParams{Host: host, Port: port, Channel: channel})
}

// ExpandURL is URL with every placeholder available, including {path}.
func ExpandURL(p Profile, stream string, v URLParams) (string, error) {
	if p.RTSP == nil {
		return "", fmt.Errorf("profile %s has no RTSP templates (kind %s)", p.ID, p.Kind)
	}
	var tmpl string
	switch stream {
	case "main":
		tmpl = p.RTSP.Main
	case "sub":
		tmpl = p.RTSP.Sub
		if tmpl == "" {
			return "", fmt.Errorf("profile %s has no sub stream template", p.ID)
		}
	default:
		return "", fmt.Errorf("stream %q: want main or sub", stream)
	}
	host := strings.TrimSuffix(strings.TrimPrefix(v.Host, "["), "]")
	if host == "" {
		return "", fmt.Errorf("profile %s: camera host is empty", p.ID)
	}
	if strings.ContainsAny(host, "/@?#[] \t\r\n") || (strings.Contains(host, ":") && net.ParseIP(host) == nil) {
		return "", fmt.Errorf("profile %s: %q is not a host name or IP address", p.ID, v.Host)
	}
	if strings.Contains(host, ":") {
		host = "[" + host + "]"
	}
	port := v.Port
	if port == 0 {
		port = p.RTSP.DefaultPort
	}
	if port == 0 {
		port = DefaultRTSPPort
	}
	if port < 1 || port > 65535 {
		return "", fmt.Errorf("profile %s: port %d is not a TCP port (1-65535)", p.ID, port)
	}
	channel := v.Channel
	if channel == 0 {
		channel = 1
	}
	if channel < 0 {
		return "", fmt.Errorf("profile %s: channel %d must be positive", p.ID, channel)
	}
	path := v.Path
	if strings.Contains(tmpl, "{path}") {
		if path == "" {
			return "", fmt.Errorf("profile %s needs the stream path of the camera (e.g. /live/ch1); set it on the device", p.ID)
		}
		if strings.ContainsAny(path, " \t\r\n@#") {
			return "", fmt.Errorf("profile %s: stream path %q contains a space, @ or #", p.ID, path)
		}
		if !strings.HasPrefix(path, "/") {
			path = "/" + path
		}
	}
	return strings.NewReplacer(
		"{host}", host,
		"{port}", strconv.Itoa(port),
		"{channel}", strconv.Itoa(channel),
		"{path}", path,
	).Replace(tmpl), nil
}
