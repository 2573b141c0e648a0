package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/offsite-gw/offsite/gateway/config"
	"github.com/offsite-gw/offsite/internal/audit"
	"github.com/offsite-gw/offsite/internal/store"
)

// errAuditBroken makes `offsite audit verify` exit 1 after it has printed the break.
type errAuditBroken struct{ b *audit.Break }

func (e errAuditBroken) Error() string { return "audit chain broken at " + e.b.String() }

// cmdAudit is `offsite audit verify [--config FILE] [--json]`: it checks the audit log's hash
// chain and names the first broken record.
func cmdAudit(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 || args[0] != "verify" {
		return usageError{"usage: offsite audit verify [--config FILE] [--json]"}
	}
	fs := flag.NewFlagSet("audit verify", flag.ContinueOnError)
	fs.SetOutput(stderr)
	path := fs.String("config", "", "configuration file (default: built-in defaults and OFFSITE_* variables)")
	asJSON := fs.Bool("json", false, "print the report as JSON")
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	if fs.NArg() != 0 {
		return usageError{"audit verify takes no arguments besides its flags"}
	}
	cfg, err := config.Load(*path, os.Environ())
	if err != nil {
		return err
	}
	db, err := store.Open(ctx, cfg.Store.DSN, cfg.DataDir, schema...)
	if err != nil {
		return err
	}
	defer db.Close()
	r, err := (&audit.Log{DB: db}).Verify(ctx)
	if err != nil {
		return err
	}
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(r); err != nil {
			return err
		}
	} else {
		fmt.Fprintf(stdout, "audit log %s: %d record(s) checked", db.Location, r.Records)
		if r.Records > 0 {
			fmt.Fprintf(stdout, ", ids %d–%d, head hash %s", r.FirstID, r.LastID, r.HeadHash)
		}
		fmt.Fprintln(stdout)
		if r.AnchorID > 0 {
			fmt.Fprintf(stdout, "retention anchor: record %d of %s, hash %s\n", r.AnchorID, r.AnchorAt.UTC().Format(time.RFC3339), r.AnchorHash)
		}
		if r.Unchained > 0 {
			fmt.Fprintf(stdout, "%d record(s) from before the chain are not chained yet (the next record chains them)\n", r.Unchained)
		}
		if r.OK() {
			fmt.Fprintln(stdout, "chain intact")
		}
	}
	if !r.OK() {
		return errAuditBroken{r.Broken}
	}
	return nil
}
