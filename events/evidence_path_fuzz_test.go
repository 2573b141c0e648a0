package events_test

import (
	"strings"
	"testing"

	"github.com/offsite-gw/offsite/events"
)

// FuzzParseEvidencePath: a path from a URL is accepted only in the store's exact layout, so
// nothing else under the evidence directory can be named.
func FuzzParseEvidencePath(f *testing.F) {
	sum := strings.Repeat("ab", 32)
	f.Add(sum[:2], sum[2:4], sum+".jpg")
	f.Add("..", "..", "passwd")
	f.Add(sum[:2], sum[2:4], strings.ToUpper(sum)+".jpg")
	f.Add(sum[:2], sum[2:4], sum+".jpg.jpg")
	f.Fuzz(func(t *testing.T, a, b, file string) {
		ref, err := events.ParseEvidencePath(a, b, file)
		if err != nil {
			return
		}
		if file != ref.SHA256+ref.Ext || a != ref.SHA256[:2] || b != ref.SHA256[2:4] ||
			strings.ContainsAny(a+b+file, "/\\") || strings.Contains(file, "..") || ref.ContentType == "" {
			t.Fatalf("accepted %q/%q/%q as %+v", a, b, file, ref)
		}
	})
}
