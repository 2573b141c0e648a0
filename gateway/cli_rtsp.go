package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"text/tabwriter"

	"github.com/offsite-gw/offsite/gateway/config"
	"github.com/offsite-gw/offsite/internal/audit"
	"github.com/offsite-gw/offsite/internal/store"
	"github.com/offsite-gw/offsite/streams"
)

// cmdRTSPConsumers manages the RTSP re-serve's consumers from the host, as the API's
// /rtsp-consumers does: add NAME, list, revoke NAME. A running gateway refuses a revoked login
// within 5 s (its lookup cache); the API's revoke also closes the consumer's open sessions.
func cmdRTSPConsumers(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		return usageError{"rtsp-consumers needs a subcommand: add NAME | list | revoke NAME"}
	}
	sub := args[0]
	fs := flag.NewFlagSet("rtsp-consumers "+sub, flag.ContinueOnError)
	fs.SetOutput(stderr)
	path := fs.String("config", "", "configuration file (default: built-in defaults and OFFSITE_* variables)")
	note := fs.String("note", "", "add: what the consumer is (host, purpose)")
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	cfg, err := config.Load(*path, os.Environ())
	if err != nil {
		return err
	}
	logger := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	db, err := store.Open(ctx, cfg.Store.DSN, cfg.DataDir, schema...)
	if err != nil {
		return err
	}
	defer db.Close()
	cs := &streams.ConsumerStore{DB: db, Reserved: []string{cfg.Streams.RTSP.Username}}
	al := &audit.Log{DB: db, Logger: logger}
	actor := "cli:" + os.Getenv("USER")
	one := func() (string, error) {
		if fs.NArg() != 1 {
			return "", usageError{"rtsp-consumers " + sub + " needs exactly one NAME"}
		}
		return fs.Arg(0), nil
	}
	switch sub {
	case "add":
		name, err := one()
		if err != nil {
			return err
		}
		c, secret, err := cs.Create(ctx, name, *note, actor)
		_ = al.Record(ctx, auditEntry(actor, "rtsp_consumer.create", name, err))
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "consumer %s created; its secret (shown this once):\n%s\nURL: rtsp://%s:%s@GATEWAY:8554/CAMERA-ID\n", c.Name, secret, c.Name, secret)
		return nil
	case "list":
		list, err := cs.List(ctx)
		if err != nil {
			return err
		}
		tw := tabwriter.NewWriter(stdout, 2, 8, 2, ' ', 0)
		fmt.Fprintln(tw, "NAME\tCREATED\tBY\tREVOKED\tNOTE")
		for _, c := range list {
			revoked := "-"
			if c.RevokedAt != nil {
				revoked = c.RevokedAt.Format("2006-01-02 15:04")
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", c.Name, c.CreatedAt.Format("2006-01-02 15:04"), c.CreatedBy, revoked, c.Note)
		}
		return tw.Flush()
	case "revoke":
		name, err := one()
		if err != nil {
			return err
		}
		_, err = cs.Revoke(ctx, name)
		_ = al.Record(ctx, auditEntry(actor, "rtsp_consumer.revoke", name, err))
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "consumer %s revoked\n", name)
		return nil
	default:
		return usageError{fmt.Sprintf("unknown rtsp-consumers subcommand %q (add, list, revoke)", sub)}
	}
}

func auditEntry(actor, action, target string, err error) audit.Entry {
	e := audit.Entry{Actor: actor, Action: action, Target: target, Result: "ok"}
	if err != nil {
		e.Result, e.Detail = "failed", err.Error()
	}
	return e
}
