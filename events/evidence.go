package events

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/offsite-gw/offsite/events/event"
	"github.com/offsite-gw/offsite/internal/errs"
)

// EvidenceStore keeps evidence files (snapshots, clips, attachments) content-addressed by
// sha256 under Dir: Dir/ab/cd/<sha256><ext>. Storing the same bytes twice keeps one file.
type EvidenceStore struct {
	Dir string
	// URLPrefix is prepended to the relative path to form the URL put into events
	// (default "/api/v1/evidence/").
	URLPrefix string
	// MaxAge: Sweep deletes files not written for longer than this (0: no age limit).
	MaxAge time.Duration
	// MaxBytes: Sweep deletes the oldest files until the total is at most this (0: no limit).
	MaxBytes int64
	// MaxFileBytes limits one Put (default 64 MiB).
	MaxFileBytes int64
	// Keep, if set, protects files from Sweep (e.g. evidence of alerts not yet closed, or
	// closed as 立案) for up to KeepFor after they were written (0: for ever).
	Keep    func(sha256 string) bool
	KeepFor time.Duration
}

var allowedExt = map[string]bool{".jpg": true, ".jpeg": true, ".png": true, ".mp4": true, ".ts": true, ".pdf": true, ".bin": true, ".json": true}

// evidenceContentTypes are the content types stored files are served with, by extension.
var evidenceContentTypes = map[string]string{
	".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".png": "image/png", ".mp4": "video/mp4", ".ts": "video/mp2t",
	".pdf": "application/pdf", ".json": "application/json", ".bin": "application/octet-stream",
}

// EvidenceUploadTypes are the content types people and workers may upload as evidence (photos
// attached when handling an alert, snapshots), with the extension each is stored under. The
// uploaded bytes must be of that type.
var EvidenceUploadTypes = map[string]string{"image/jpeg": ".jpg", "image/png": ".png"}

// EvidenceRef names one stored file by the path of its URL.
type EvidenceRef struct {
	SHA256      string
	Ext         string // ".jpg"
	ContentType string // "image/jpeg"
}

// ParseEvidencePath checks that a/b/file is exactly the relative path of a URL the store hands
// out — sha[0:2]/sha[2:4]/<lower-case sha256>.<known extension> — without touching the file
// system. Anything else (another directory, upper-case hex, an unknown or double extension,
// "..") is errs.KindNotFound evidence_not_found, so nothing else under Dir can be reached.
func ParseEvidencePath(a, b, file string) (EvidenceRef, error) {
	sum, ext, _ := strings.Cut(file, ".")
	ext = "." + ext
	ctype, ok := evidenceContentTypes[ext]
	if !event.IsHex64(sum) || !ok || a != sum[0:2] || b != sum[2:4] {
		return EvidenceRef{}, errs.E(errs.KindNotFound, "evidence_not_found", "no such evidence file")
	}
	return EvidenceRef{SHA256: sum, Ext: ext, ContentType: ctype}, nil
}

// OpenRef opens the stored file ref names and returns it with its size; a missing file (or
// anything but a regular file) is errs.KindNotFound evidence_not_found.
func (s *EvidenceStore) OpenRef(ref EvidenceRef) (*os.File, int64, error) {
	notFound := errs.E(errs.KindNotFound, "evidence_not_found", "no evidence %s%s", ref.SHA256, ref.Ext)
	if !event.IsHex64(ref.SHA256) || !allowedExt[ref.Ext] {
		return nil, 0, notFound
	}
	f, err := os.Open(filepath.Join(s.Dir, s.rel(ref.SHA256, ref.Ext)))
	if errors.Is(err, os.ErrNotExist) {
		return nil, 0, notFound
	}
	if err != nil {
		return nil, 0, fmt.Errorf("evidence: %w", err)
	}
	st, err := f.Stat()
	if err != nil || !st.Mode().IsRegular() {
		f.Close()
		return nil, 0, notFound
	}
	return f, st.Size(), nil
}

// Put stores the content of r and returns its sha256 (hex) and URL. ext is the file type
// (".jpg", ".mp4" …; default ".bin").
func (s *EvidenceStore) Put(r io.Reader, ext string) (sum, url string, err error) {
	ext = strings.ToLower(ext)
	if ext == "" {
		ext = ".bin"
	}
	if !allowedExt[ext] {
		return "", "", errs.E(errs.KindInvalid, "invalid_evidence_type", "evidence type %q is not one of jpg, png, mp4, ts, pdf, json, bin", ext)
	}
	limit := s.MaxFileBytes
	if limit <= 0 {
		limit = 64 << 20
	}
	return s.store(ext, "", func(w io.Writer) error {
		n, err := io.Copy(w, io.LimitReader(r, limit+1))
		if err == nil && n > limit {
			err = errs.E(errs.KindInvalid, "evidence_too_large", "evidence larger than %d bytes", limit)
		}
		return err
	})
}

// store writes what fill writes to a temporary file while hashing it, makes it durable
// (file and directory synced) under its sha256 and returns the sha256 and URL. With want set,
// bytes that hash to anything else are refused and nothing is kept. A file already stored
// under that name is kept as it is, its time refreshed for retention.
func (s *EvidenceStore) store(ext, want string, fill func(w io.Writer) error) (sum, url string, err error) {
	tmpDir := filepath.Join(s.Dir, "tmp")
	if err := os.MkdirAll(tmpDir, 0o750); err != nil {
		return "", "", fmt.Errorf("evidence: %w", err)
	}
	f, err := os.CreateTemp(tmpDir, "put-*")
	if err != nil {
		return "", "", fmt.Errorf("evidence: %w", err)
	}
	defer os.Remove(f.Name()) // no-op after rename
	h := sha256.New()
	err = fill(io.MultiWriter(f, h))
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return "", "", err
	}
	sum = hex.EncodeToString(h.Sum(nil))
	if want != "" && sum != want {
		return "", "", errs.E(errs.KindInvalid, "evidence_hash_mismatch", "the copy hashes to %s, not %s", sum, want)
	}
	rel := s.rel(sum, ext)
	dst := filepath.Join(s.Dir, rel)
	if err := os.MkdirAll(filepath.Dir(dst), 0o750); err != nil {
		return "", "", fmt.Errorf("evidence: %w", err)
	}
	if _, err := os.Stat(dst); err == nil {
		now := time.Now()
		_ = os.Chtimes(dst, now, now) // refresh retention; the file itself is already durable
	} else {
		if err := os.Rename(f.Name(), dst); err != nil {
			return "", "", fmt.Errorf("evidence: %w", err)
		}
		// The rename is durable only once its directory is: an event may name this file
		// as soon as we return.
		if err := syncDir(filepath.Dir(dst)); err != nil {
			return "", "", fmt.Errorf("evidence: %w", err)
		}
	}
	return sum, s.prefix() + filepath.ToSlash(rel), nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	return err
}

func (s *EvidenceStore) prefix() string {
	if s.URLPrefix == "" {
		return "/api/v1/evidence/"
	}
	return s.URLPrefix
}

func (s *EvidenceStore) rel(sum, ext string) string {
	return filepath.Join(sum[0:2], sum[2:4], sum+ext)
}

// Open returns the file stored under sum (any extension) and its path.
func (s *EvidenceStore) Open(sum string) (*os.File, error) {
	if !event.IsHex64(sum) {
		return nil, errs.E(errs.KindInvalid, "invalid_sha256", "%q is not a sha256", sum)
	}
	matches, _ := filepath.Glob(filepath.Join(s.Dir, sum[0:2], sum[2:4], sum+".*"))
	if len(matches) == 0 {
		return nil, errs.E(errs.KindNotFound, "evidence_not_found", "no evidence %s", sum)
	}
	return os.Open(matches[0])
}

// Sweep applies the retention policy and returns how many files and bytes it removed.
func (s *EvidenceStore) Sweep(now time.Time) (files int, bytes int64, err error) {
	type entry struct {
		path string
		sum  string
		size int64
		mod  time.Time
	}
	var all []entry
	err = filepath.WalkDir(s.Dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if os.IsNotExist(err) {
				return nil
			}
			return err
		}
		if d.IsDir() {
			if d.Name() == "tmp" {
				return filepath.SkipDir
			}
			return nil
		}
		info, err := d.Info()
		if err != nil {
			return nil
		}
		name := d.Name()
		sum := strings.TrimSuffix(name, filepath.Ext(name))
		if !event.IsHex64(sum) {
			return nil
		}
		all = append(all, entry{p, sum, info.Size(), info.ModTime()})
		return nil
	})
	if err != nil {
		return 0, 0, fmt.Errorf("evidence sweep: %w", err)
	}
	sort.Slice(all, func(i, j int) bool { return all[i].mod.Before(all[j].mod) })
	var total int64
	for _, e := range all {
		total += e.size
	}
	for _, e := range all {
		old := s.MaxAge > 0 && now.Sub(e.mod) > s.MaxAge
		over := s.MaxBytes > 0 && total > s.MaxBytes
		if !old && !over {
			continue
		}
		if s.Keep != nil && (s.KeepFor <= 0 || now.Sub(e.mod) <= s.KeepFor) && s.Keep(e.sum) {
			continue
		}
		if err := os.Remove(e.path); err == nil {
			files++
			bytes += e.size
			total -= e.size
		}
	}
	return files, bytes, nil
}

// Run sweeps every interval (default 1h) until ctx ends; logger may be nil.
func (s *EvidenceStore) Run(ctx context.Context, every time.Duration, logger *slog.Logger) {
	if every <= 0 {
		every = time.Hour
	}
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			n, b, err := s.Sweep(now)
			if logger != nil && (err != nil || n > 0) {
				logger.Info("evidence retention sweep", "files", n, "bytes", b, "err", err)
			}
		}
	}
}
