package main

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"os"
	"regexp"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"
	"gopkg.in/yaml.v3"

	"github.com/offsite-gw/offsite/events/uplink"
	"github.com/offsite-gw/offsite/gateway/config"
)

var (
	promString   = regexp.MustCompile(`"(?:[^"\\]|\\.)*"`)
	promMatchers = regexp.MustCompile(`\{[^}]*\}|\[[^\]]*\]`)
	promGrouping = regexp.MustCompile(`\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)`)
	promIdent    = regexp.MustCompile(`[a-zA-Z_:][a-zA-Z0-9_:]*`)
	promKeywords = map[string]bool{"and": true, "or": true, "unless": true, "bool": true, "offset": true,
		"by": true, "without": true, "on": true, "ignoring": true, "group_left": true, "group_right": true, "le": true}
	// Series Prometheus makes itself, not the gateway.
	promBuiltin = map[string]bool{"up": true, "scrape_duration_seconds": true}
)

// metricNames returns the metric names a PromQL expression reads: identifiers that are not
// functions, keywords, label names or label values.
func metricNames(expr string) []string {
	s := promString.ReplaceAllString(expr, `""`)
	s = promMatchers.ReplaceAllString(s, " ")
	s = promGrouping.ReplaceAllString(s, " ")
	var out []string
	for _, loc := range promIdent.FindAllStringIndex(s, -1) {
		name := s[loc[0]:loc[1]]
		rest := strings.TrimLeft(s[loc[1]:], " ")
		if strings.HasPrefix(rest, "(") || promKeywords[name] || (loc[0] > 0 && (s[loc[0]-1] >= '0' && s[loc[0]-1] <= '9' || s[loc[0]-1] == '.')) {
			continue // a function, a keyword, or the exponent of a number (10e6)
		}
		out = append(out, name)
	}
	return out
}

// registered reports whether the gateway's registry has a metric of that name, labelled
// vectors without series yet included: registering a probe of the same name fails then.
func registered(reg *prometheus.Registry, name string) bool {
	for _, suffix := range []string{"_bucket", "_count", "_sum"} {
		if base, ok := strings.CutSuffix(name, suffix); ok && registered(reg, base) {
			return true
		}
	}
	probe := prometheus.NewGauge(prometheus.GaugeOpts{Name: name, Help: "probe"})
	if err := reg.Register(probe); err != nil {
		return true
	}
	reg.Unregister(probe)
	return false
}

// Every query of the Grafana dashboard and every alert rule in deploy/ names a metric the
// gateway exports (a centre with an uplink, a site with InfluxDB telemetry: every metric the
// dashboard shows), so an operator never gets an empty panel or a rule that cannot fire.
func TestDeployDashboardAndRulesNameExportedMetrics(t *testing.T) {
	dir := t.TempDir()
	cfg, err := config.Load("../deploy/offsite.yml", []string{"OFFSITE_DATA_DIR=" + dir,
		"OFFSITE_HTTP_LISTEN=127.0.0.1:0", "OFFSITE_INGEST_TELEMETRY_BACKEND=influx",
		"OFFSITE_INGEST_TELEMETRY_INFLUX_URL=http://127.0.0.1:9"})
	require.NoError(t, err)
	cfg.Uplinks = append(cfg.Uplinks, mustUplink(t, `{name: province, base_url: "http://127.0.0.1:9", secret: s3cret-province-key}`))
	g, err := openGateway(context.Background(), cfg, slog.New(slog.NewTextHandler(io.Discard, nil)), io.Discard)
	require.NoError(t, err)
	defer g.stop()

	var exprs []string
	var dash struct {
		Panels []struct {
			Title   string
			Type    string
			Targets []struct{ Expr string }
		}
	}
	b, err := os.ReadFile("../deploy/grafana/offsite-city.json")
	require.NoError(t, err)
	require.NoError(t, json.Unmarshal(b, &dash))
	for _, p := range dash.Panels {
		if p.Type == "row" {
			continue
		}
		require.NotEmpty(t, p.Targets, "panel %q has no query", p.Title)
		for _, tg := range p.Targets {
			exprs = append(exprs, tg.Expr)
		}
	}
	require.GreaterOrEqual(t, len(exprs), 15)
	var rules struct {
		Groups []struct {
			Rules []struct{ Alert, Expr string }
		}
	}
	b, err = os.ReadFile("../deploy/prometheus/alerts.yml")
	require.NoError(t, err)
	require.NoError(t, yaml.Unmarshal(b, &rules))
	alerts := map[string]bool{}
	for _, gr := range rules.Groups {
		for _, r := range gr.Rules {
			alerts[r.Alert] = true
			exprs = append(exprs, r.Expr)
		}
	}
	for _, want := range []string{"OffsiteGatewayOffline", "OffsiteUplinkLagging", "OffsiteDeadLetters", "OffsiteUplinkSpoolGrowing", "OffsiteTelemetrySpoolGrowing"} {
		require.True(t, alerts[want], "alert rule %s", want)
	}

	for _, e := range exprs {
		names := metricNames(e)
		require.NotEmpty(t, names, "query %q names no metric", e)
		for _, n := range names {
			if promBuiltin[n] {
				continue
			}
			require.True(t, registered(g.reg, n), "query %q: the gateway exports no metric %s", e, n)
		}
	}
	// The check itself tells a misspelt metric from a real one.
	require.False(t, registered(g.reg, "offsite_uplink_lagg_seconds"))
	require.Equal(t, []string{"offsite_centre_batch_seconds_bucket"},
		metricNames(`histogram_quantile(0.99, sum by (le) (rate(offsite_centre_batch_seconds_bucket{job=~"a.*"}[5m]))) > 10e6`))
}

func mustUplink(t *testing.T, y string) (u uplink.Config) {
	t.Helper()
	require.NoError(t, yaml.Unmarshal([]byte(y), &u))
	return u
}
