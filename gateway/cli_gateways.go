package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/offsite-gw/offsite/devices"
	"github.com/offsite-gw/offsite/gateway/config"
	"github.com/offsite-gw/offsite/internal/audit"
)

const gatewaysUsage = `usage: offsite gateways add --config FILE --id ID [--name NAME] [--url BASE_URL] [--alg hmac-sm3|hmac-sha256]
       offsite gateways list --config FILE
       offsite gateways remove --config FILE ID
       offsite gateways rotate-secret --config FILE ID`

// cmdGateways enrols, lists and removes the site gateways below this centre, on its database
// (the same as POST|GET|DELETE /api/v1/gateways, audited as the CLI user).
func cmdGateways(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		return usageError{gatewaysUsage}
	}
	sub := args[0]
	fs := flag.NewFlagSet("gateways "+sub, flag.ContinueOnError)
	fs.SetOutput(stderr)
	path := fs.String("config", "", "the centre's configuration file")
	id := fs.String("id", "", "add: the gateway's id (its gateway_id), e.g. hq-hall-gw")
	name := fs.String("name", "", "add: a name people recognise, e.g. 红旗区政务服务中心网关")
	baseURL := fs.String("url", "", "add: the gateway's own HTTP address, e.g. http://10.0.3.7:8080 (for video)")
	alg := fs.String("alg", "", "add: accept only this signature algorithm (hmac-sm3 or hmac-sha256; default both)")
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	if *path == "" {
		return usageError{"gateways " + sub + " needs --config FILE (the centre's configuration)\n" + gatewaysUsage}
	}
	cfg, err := config.Load(*path, os.Environ())
	if err != nil {
		return err
	}
	logger := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	st, db, err := openDeviceStore(ctx, cfg, logger)
	if err != nil {
		return err
	}
	defer db.Close()
	gws := &devices.GatewayStore{DB: db, Sealer: st.Sealer}
	al := &audit.Log{DB: db, Logger: logger}
	actor := "cli:" + os.Getenv("USER")
	record := func(action, target string, err error, detail string) {
		e := audit.Entry{Actor: actor, Action: action, Target: target, Detail: detail}
		if err != nil {
			e.Result, e.Detail = "failed", err.Error()
		}
		_ = al.Record(ctx, e)
	}
	oneID := func() (string, error) {
		if fs.NArg() != 1 {
			return "", usageError{"gateways " + sub + " needs exactly one gateway id\n" + gatewaysUsage}
		}
		return fs.Arg(0), nil
	}

	switch sub {
	case "add":
		if *id == "" {
			return usageError{"gateways add needs --id ID\n" + gatewaysUsage}
		}
		g := devices.Gateway{ID: *id, Name: *name, BaseURL: *baseURL, Alg: *alg}
		secret, err := gws.Enrol(ctx, &g, "")
		record("gateway.enrol", *id, err, g.Name)
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "Enrolled gateway %s (%s).\n\nIts secret, shown only this once:\n\n    %s\n\n", g.ID, g.Name, secret)
		fmt.Fprintf(stdout, "On the site gateway, add this uplink to its configuration:\n\n"+
			"uplinks:\n  - name: centre\n    kind: centre\n    url: %s\n    secret: %s\n\nand set gateway_id: %s there.\n",
			centreURL(cfg), secret, g.ID)
		return nil
	case "list":
		list, err := gws.List(ctx)
		if err != nil {
			return err
		}
		tw := tabwriter.NewWriter(stdout, 2, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "ID\tNAME\tSTATE\tLAST SEEN\tLAG\tINVENTORY\tSITES\tDEVICES\tVERSION\tREFUSED")
		for _, g := range list {
			seen := "never"
			if g.LastSeen != nil {
				seen = g.LastSeen.Local().Format(time.DateTime)
			}
			state := g.State
			if g.Disabled {
				state += " (disabled)"
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%d\t%d\t%d\t%s\t%d\n", g.ID, g.Name, state, seen, g.LagEvents, g.InventoryRevision,
				g.Sites, g.Devices, dash(g.Version), g.Refused)
		}
		return tw.Flush()
	case "remove":
		gid, err := oneID()
		if err != nil {
			return err
		}
		err = gws.Delete(ctx, gid)
		record("gateway.remove", gid, err, "")
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "removed gateway %s and its inventory; its events stay in the log\n", gid)
		return nil
	case "rotate-secret":
		gid, err := oneID()
		if err != nil {
			return err
		}
		secret, err := gws.RotateSecret(ctx, gid, "")
		record("gateway.rotate_secret", gid, err, "")
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "New secret for %s, shown only this once (the old one no longer works):\n\n    %s\n", gid, secret)
		return nil
	default:
		return usageError{fmt.Sprintf("unknown gateways subcommand %q\n%s", sub, gatewaysUsage)}
	}
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// centreURL guesses the URL a site uses to reach this centre, for the printed example.
func centreURL(cfg config.Config) string {
	l := cfg.HTTP.Listen
	if strings.HasPrefix(l, ":") {
		return "http://CENTRE-ADDRESS" + l
	}
	return "http://" + l
}
