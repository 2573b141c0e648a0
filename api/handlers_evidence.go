package api

import (
	"context"
	"errors"
	"io"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/offsite-gw/offsite/events"
	"github.com/offsite-gw/offsite/events/uplink"
	"github.com/offsite-gw/offsite/internal/audit"
	"github.com/offsite-gw/offsite/internal/errs"
)

// EvidenceFetcher brings a file this node does not have from the site gateway whose event
// carries it (a centre's events/centre.EvidenceFetcher).
type EvidenceFetcher interface {
	Fetch(ctx context.Context, ref events.EvidenceRef) error
}

// evidencePeerRoutes registers GET /offsite/v1/evidence/{sha256}: the receivers of this
// node's uplinks (its centre, the province) fetch the evidence of the events they were sent,
// signed with the uplink's secret (docs/contracts.md §9).
func (s *Server) evidencePeerRoutes(app *fiber.App) {
	if s.Evidence == nil || s.EvidenceGate == nil || s.Events == nil {
		return
	}
	app.Get("/offsite/v1/evidence/:sha256", s.serveEvidenceToPeer)
}

// getEvidence serves a stored file to a caller who may see an event or alert it is attached
// to (administrators: any); to anyone else it does not exist (404), so file names of other
// departments' evidence tell nothing. events.ParseEvidencePath checks the path against the
// store's layout before anything touches the file system, so nothing else can be reached.
// A file a centre does not have yet is fetched from the site gateway whose event carries it
// (EvidenceFetch). Single byte ranges are served (the browser's <video> seeks with them).
// ?download=1 answers as an attachment named with the sha256. Audit: evidence.download for
// downloads, evidence.view for inline views (pictures, plays); a play's later ranges (not
// starting at byte 0) are part of the same view and not recorded again; refusals always.
func (s *Server) getEvidence(c *fiber.Ctx) error {
	ref, err := events.ParseEvidencePath(c.Params("a"), c.Params("b"), c.Params("file"))
	if err != nil {
		return err
	}
	download := c.Query("download") == "1"
	action := "evidence.view"
	if download {
		action = "evidence.download"
	}
	target := ref.SHA256 + ref.Ext
	if err := s.evidenceVisible(c, ref.SHA256); err != nil {
		s.Record(c, action, target, err, "")
		return err
	}
	etag := `"` + ref.SHA256 + `"`
	c.Set(fiber.HeaderCacheControl, "private, max-age=31536000, immutable") // content-addressed
	c.Set(fiber.HeaderETag, etag)
	c.Set(fiber.HeaderAcceptRanges, "bytes")
	if c.Get(fiber.HeaderIfNoneMatch) == etag {
		s.Record(c, action, target, nil, "not modified")
		return c.SendStatus(fiber.StatusNotModified)
	}
	f, size, err := s.Evidence.OpenRef(ref)
	fetched := ""
	if errs.Is(err, errs.KindNotFound) && s.EvidenceFetch != nil {
		if ferr := s.EvidenceFetch.Fetch(c.UserContext(), ref); ferr == nil {
			f, size, err = s.Evidence.OpenRef(ref)
			fetched = "fetched from site gateway"
		} else if !errs.Is(ferr, errs.KindNotFound) {
			err = ferr
		}
	}
	if err != nil {
		s.Record(c, action, target, err, "")
		return err
	}
	start, n, partial, rerr := ParseByteRange(c.Get(fiber.HeaderRange), size)
	if ir := c.Get(fiber.HeaderIfRange); ir != "" && ir != etag {
		start, n, partial, rerr = 0, size, false, nil // the client's copy is another file: send it whole
	}
	if rerr != nil {
		f.Close()
		s.Record(c, action, target, rerr, "")
		c.Set(fiber.HeaderContentRange, "bytes */"+strconv.FormatInt(size, 10))
		return writeError(c, fiber.StatusRequestedRangeNotSatisfiable, ErrorDetail{Code: errs.CodeOf(rerr), Message: rerr.Error()})
	}
	if start == 0 {
		detail := fetched
		if partial {
			detail = strings.TrimSpace(detail + " bytes 0-" + strconv.FormatInt(n-1, 10) + "/" + strconv.FormatInt(size, 10))
		}
		s.Record(c, action, target, nil, detail)
	}
	c.Set(fiber.HeaderContentType, ref.ContentType)
	if download {
		c.Set(fiber.HeaderContentDisposition, `attachment; filename="evidence-`+ref.SHA256+ref.Ext+`"`)
	} else {
		c.Set(fiber.HeaderContentDisposition, "inline")
	}
	if partial {
		if _, err := f.Seek(start, io.SeekStart); err != nil {
			f.Close()
			return err
		}
		c.Status(fiber.StatusPartialContent)
		c.Set(fiber.HeaderContentRange, "bytes "+strconv.FormatInt(start, 10)+"-"+strconv.FormatInt(start+n-1, 10)+"/"+strconv.FormatInt(size, 10))
		return c.SendStream(limitedFile{io.LimitReader(f, n), f}, int(n)) // fasthttp closes it when sent
	}
	return c.SendStream(f, int(size)) // fasthttp closes f when sent
}

type limitedFile struct {
	io.Reader
	f *os.File
}

func (l limitedFile) Close() error { return l.f.Close() }

// ParseByteRange reads a Range header against a file of size bytes. It returns the first
// byte and the length to send, and partial = true for a satisfiable single range. A header
// this server does not serve as a range (absent, another unit, several ranges, bad syntax) is
// ignored: the whole file, partial false. A single range that starts beyond the end (or a
// zero-length suffix) is errs.KindInvalid range_not_satisfiable (416).
func ParseByteRange(h string, size int64) (start, n int64, partial bool, err error) {
	spec, ok := strings.CutPrefix(strings.TrimSpace(h), "bytes=")
	if !ok || strings.Contains(spec, ",") {
		return 0, size, false, nil
	}
	first, last, ok := strings.Cut(strings.TrimSpace(spec), "-")
	if !ok {
		return 0, size, false, nil
	}
	unsatisfiable := errs.E(errs.KindInvalid, "range_not_satisfiable", "range %q is outside the file's %d bytes", excerpt([]byte(h), 80), size)
	if first == "" { // suffix: the last N bytes
		k, err := strconv.ParseInt(last, 10, 64)
		if err != nil || k < 0 {
			return 0, size, false, nil
		}
		if k == 0 || size == 0 {
			return 0, 0, false, unsatisfiable
		}
		k = min(k, size)
		return size - k, k, true, nil
	}
	a, err := strconv.ParseInt(first, 10, 64)
	if err != nil || a < 0 {
		return 0, size, false, nil
	}
	b := size - 1
	if last != "" {
		if b, err = strconv.ParseInt(last, 10, 64); err != nil || b < a {
			return 0, size, false, nil
		}
		b = min(b, size-1)
	}
	if a >= size {
		return 0, 0, false, unsatisfiable
	}
	return a, b - a + 1, true, nil
}

// serveEvidenceToPeer answers a signed fetch by the receiver of one of this node's uplinks:
// the file, if an event that uplink carries (its filter) has it as evidence. A centre that
// does not hold a child's file yet fetches it first (checked against its sha256). Refusals
// are 401 (signature) or 404 (no such file for that peer); every answer is audited
// (evidence.download, actor uplink:NAME).
func (s *Server) serveEvidenceToPeer(c *fiber.Ctx) error {
	path := string(c.Request().URI().Path())
	sum, perr := uplink.ParseEvidencePath(path)
	peer, err := s.EvidenceGate.Verify(requestHeader(c), fiber.MethodGet, path, time.Now())
	entry := audit.Entry{Actor: "uplink:" + peer.Name, Action: "evidence.download", Target: sum, IP: c.IP(), Result: "ok"}
	fail := func(result string, err error) error {
		entry.Result, entry.Detail = result, strings.TrimSpace(errs.CodeOf(err)+" "+err.Error())
		if entry.Target == "" {
			entry.Target = excerpt([]byte(path), 120)
		}
		_ = s.Audit.Record(c.UserContext(), entry)
		return err
	}
	if err != nil {
		entry.Actor = "uplink:?"
		return fail("denied", errs.Wrap(errs.KindUnauthorized, signatureRefusal(err), err, "%s", err.Error()))
	}
	if perr != nil {
		return fail("failed", errs.Wrap(errs.KindNotFound, "evidence_not_found", perr, "%s", perr.Error()))
	}
	ctx := c.UserContext()
	carriers, err := s.Events.EventsWithEvidence(ctx, sum, 100)
	if err != nil {
		return fail("failed", err)
	}
	var ext string
	for i := range carriers {
		if !peer.Filter.Match(&carriers[i]) {
			continue
		}
		for _, ev := range carriers[i].Evidence {
			if ev.SHA256 != sum {
				continue
			}
			if _, file, ok := strings.Cut(ev.URL[strings.LastIndex(ev.URL, "/")+1:], "."); ok {
				ext = "." + file
			}
		}
		if ext != "" {
			break
		}
	}
	notFound := errs.E(errs.KindNotFound, "evidence_not_found", "no evidence %s in the events sent to %s", sum, peer.Name)
	if ext == "" {
		return fail("failed", notFound)
	}
	ref, err := events.ParseEvidencePath(sum[0:2], sum[2:4], sum+ext)
	if err != nil {
		return fail("failed", notFound)
	}
	f, size, err := s.Evidence.OpenRef(ref)
	if errs.Is(err, errs.KindNotFound) && s.EvidenceFetch != nil {
		if err = s.EvidenceFetch.Fetch(ctx, ref); err == nil {
			f, size, err = s.Evidence.OpenRef(ref)
			entry.Detail = "fetched from site gateway"
		}
	}
	if err != nil {
		return fail("failed", err)
	}
	_ = s.Audit.Record(ctx, entry)
	c.Set(fiber.HeaderContentType, ref.ContentType)
	c.Set(fiber.HeaderETag, `"`+sum+`"`)
	return c.SendStream(f, int(size))
}

// alertDetail is GET /alerts/{id}: the alert with its evidence and clips.
type alertDetail struct {
	events.Alert
	// Clips is the alert's evidence: its source event's, and every evidence.added naming one
	// of its events (clips, docs/contracts.md §9).
	Clips []events.AlertEvidence `json:"clips"`
}

// alertWithClips adds the alert's evidence to its detail.
func (s *Server) alertWithClips(c *fiber.Ctx, al events.Alert) (alertDetail, error) {
	clips, err := s.Alerts.Evidence(c.UserContext(), al)
	if err != nil {
		return alertDetail{}, err
	}
	return alertDetail{Alert: al, Clips: clips}, nil
}

// signatureRefusal is the error code of a signed request from a peer that the gate refused.
func signatureRefusal(err error) string {
	switch {
	case errors.Is(err, uplink.ErrSkew):
		return "stale_timestamp"
	case errors.Is(err, uplink.ErrReplay):
		return "replayed_request"
	case errors.Is(err, uplink.ErrMissingHeader):
		return "unsigned"
	}
	return "bad_signature"
}
