package ingest_test

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/offsite-gw/offsite/ingest"
)

func TestParseTopic(t *testing.T) {
	for _, c := range []struct {
		tpl, topic, site, dev string
		ok                    bool
	}{
		{"offsite/{site}/{device}/up", "offsite/s1/d1/up", "s1", "d1", true},
		{"offsite/{site}/{device}/up", "offsite/s1/d1/status", "", "", false},
		{"offsite/{site}/{device}/up", "offsite/s1//up", "", "", false},
		{"offsite/{site}/{device}/up", "offsite/+/d1/up", "", "", false},
		{"offsite/{site}/{device}/up", "offsite/s1/d1/up/x", "", "", false},
		{"v1/dev-{device}/data", "v1/dev-42/data", "", "42", true},
		{"v1/dev-{device}/data", "v1/dev-/data", "", "", false},
		{"{device}/{device}", "a/b", "", "", false},
	} {
		site, dev, ok := ingest.ParseTopic(c.tpl, c.topic)
		require.Equal(t, c.ok, ok, "%s %s", c.tpl, c.topic)
		require.Equal(t, c.site, site)
		require.Equal(t, c.dev, dev)
	}
	require.Equal(t, "offsite/+/+/up", ingest.TopicFilter("offsite/{site}/{device}/up"))
}

func TestFilterCovers(t *testing.T) {
	for _, c := range []struct {
		allowed, requested string
		ok                 bool
	}{
		{"offsite/events/#", "offsite/events/alarm.raised", true},
		{"offsite/events/#", "offsite/events", true}, // # also matches the parent level
		{"offsite/events/#", "offsite/#", false},
		{"offsite/+/+/up", "offsite/s1/d1/up", true},
		{"offsite/+/+/up", "offsite/+/+/up", true},
		{"offsite/+/+/up", "offsite/s1/#", false},
		{"offsite/+/+/up", "$share/g/offsite/s1/+/up", true},
		{"#", "anything/at/all", true},
		{"a/b", "a/b/c", false},
	} {
		require.Equal(t, c.ok, ingest.FilterCovers(c.allowed, c.requested), "%s covers %s", c.allowed, c.requested)
	}
}

// FuzzParseTopic: parsing never panics, and what it parses expands back to the topic.
func FuzzParseTopic(f *testing.F) {
	f.Add("offsite/{site}/{device}/up", "offsite/s1/d1/up")
	f.Add("v1/dev-{device}/data", "v1/dev-42/data")
	f.Add("{site}{device}", "ab")
	f.Add("a/{x}/b", "a/y/b")
	f.Fuzz(func(t *testing.T, tpl, topic string) {
		site, dev, ok := ingest.ParseTopic(tpl, topic)
		if !ok {
			return
		}
		if strings.ContainsAny(site+dev, "/+#") {
			t.Fatalf("parsed a wildcard or separator: %q %q", site, dev)
		}
		if strings.Contains(tpl, "{site}") && strings.Contains(tpl, "{device}") && ingest.ExpandTopic(tpl, site, dev) != topic {
			t.Fatalf("ParseTopic(%q, %q) = %q, %q does not expand back", tpl, topic, site, dev)
		}
	})
}

// FuzzFilterCovers: never panics; without wildcards in allowed it is plain equality; "#"
// covers everything.
func FuzzFilterCovers(f *testing.F) {
	f.Add("offsite/+/+/up", "offsite/s1/d1/up")
	f.Add("offsite/events/#", "$share/g/offsite/events/x")
	f.Add("a/b", "a/#")
	f.Fuzz(func(t *testing.T, allowed, requested string) {
		got := ingest.FilterCovers(allowed, requested)
		if !strings.ContainsAny(allowed, "+#") && !strings.HasPrefix(requested, "$share/") && got != (allowed == requested) {
			t.Fatalf("FilterCovers(%q, %q) = %v", allowed, requested, got)
		}
		if ingest.FilterCovers("#", requested) == false {
			t.Fatalf("# does not cover %q", requested)
		}
	})
}
