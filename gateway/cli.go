package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"

	"github.com/offsite-gw/offsite/devices"
	profiles "github.com/offsite-gw/offsite/firmware-profiles"
	"github.com/offsite-gw/offsite/gateway/config"
	"github.com/offsite-gw/offsite/internal/audit"
	"github.com/offsite-gw/offsite/internal/store"
)

func cmdDevices(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		return usageError{"devices needs a subcommand: import FILE.csv | export"}
	}
	sub := args[0]
	fs := flag.NewFlagSet("devices "+sub, flag.ContinueOnError)
	fs.SetOutput(stderr)
	path := fs.String("config", "", "configuration file (default: built-in defaults and OFFSITE_* variables)")
	gbk := fs.Bool("gbk", false, "export: write GBK instead of UTF-8 with BOM (for old Excel and WPS)")
	zh := fs.Bool("zh", false, "export: Chinese column headers (站点编号, 站点名称 …)")
	outPath := fs.String("o", "", "export: write to this file instead of standard output")
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	cfg, err := config.Load(*path, os.Environ())
	if err != nil {
		return err
	}
	if sub == "export" {
		if err := requireDatabase(cfg); err != nil {
			return err
		}
	}
	logger := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	st, db, err := openDeviceStore(ctx, cfg, logger)
	if err != nil {
		return err
	}
	defer db.Close()
	al := &audit.Log{DB: db, Logger: logger}
	actor := "cli:" + os.Getenv("USER")

	switch sub {
	case "import":
		if fs.NArg() != 1 {
			return usageError{"devices import needs exactly one FILE.csv"}
		}
		f, err := os.Open(fs.Arg(0))
		if err != nil {
			return err
		}
		defer f.Close()
		sites, devs, err := devices.ParseCSV(f, devices.CSVParseOptions{Profiles: st.Profiles})
		if err != nil {
			var ie *devices.ImportError
			if errors.As(err, &ie) {
				fmt.Fprintf(stderr, "%s: nothing imported; %d bad row(s):\n", fs.Arg(0), len(ie.Rows))
				for _, r := range ie.Rows {
					fmt.Fprintf(stderr, "  row %d, %s: %s\n", r.Row, r.Column, r.Reason)
				}
				_ = al.Record(ctx, audit.Entry{Actor: actor, Action: "device.import", Target: fs.Arg(0), Result: "failed", Detail: fmt.Sprintf("%d bad rows", len(ie.Rows))})
				return fmt.Errorf("import refused")
			}
			return err
		}
		if err := st.Import(ctx, sites, devs); err != nil {
			_ = al.Record(ctx, audit.Entry{Actor: actor, Action: "device.import", Target: fs.Arg(0), Result: "failed", Detail: err.Error()})
			return fmt.Errorf("import: %w", err)
		}
		_ = al.Record(ctx, audit.Entry{Actor: actor, Action: "device.import", Target: fs.Arg(0), Detail: fmt.Sprintf("%d sites, %d devices", len(sites), len(devs))})
		fmt.Fprintf(stdout, "imported %d site(s) and %d device(s) from %s\n", len(sites), len(devs), fs.Arg(0))
		return nil
	case "export":
		sites, err := st.ListSites(ctx, devices.SiteFilter{})
		if err != nil {
			return err
		}
		devs, err := st.ListDevices(ctx, devices.DeviceFilter{})
		if err != nil {
			return err
		}
		w := stdout
		if *outPath != "" {
			f, err := os.Create(*outPath)
			if err != nil {
				return err
			}
			defer f.Close()
			w = f
		}
		opts := devices.CSVWriteOptions{ChineseHeaders: *zh}
		if *gbk {
			opts.Encoding = "gbk"
		}
		bw := bufio.NewWriter(w)
		if err := devices.WriteCSV(bw, sites, devs, opts); err != nil {
			return err
		}
		return bw.Flush()
	default:
		return usageError{fmt.Sprintf("unknown devices subcommand %q (import, export)", sub)}
	}
}

func openDeviceStore(ctx context.Context, cfg config.Config, logger *slog.Logger) (*devices.SQLStore, *store.DB, error) {
	db, err := store.Open(ctx, cfg.Store.DSN, cfg.DataDir, schema...)
	if err != nil {
		return nil, nil, err
	}
	reg, err := profiles.NewRegistry(cfg.Profiles.Embedded, cfg.Profiles.Dir)
	if err != nil {
		db.Close()
		return nil, nil, fmt.Errorf("profiles: %w", err)
	}
	key, err := loadSecretKey(cfg, logger)
	if err != nil {
		db.Close()
		return nil, nil, err
	}
	sealer, err := devices.NewSealer(key)
	if err != nil {
		db.Close()
		return nil, nil, err
	}
	return &devices.SQLStore{DB: db, Sealer: sealer, Profiles: reg}, db, nil
}

// requireDatabase refuses to read a gateway database that is not there: without it an export
// would create an empty one (and its folder) and print an empty sheet.
func requireDatabase(cfg config.Config) error {
	dsn := cfg.Store.DSN
	if strings.HasPrefix(dsn, "postgres://") || strings.HasPrefix(dsn, "postgresql://") {
		return nil
	}
	p := strings.TrimPrefix(dsn, "sqlite:")
	if p == "" {
		p = filepath.Join(cfg.DataDir, "offsite.db")
	}
	if _, err := os.Stat(p); err != nil {
		return usageError{fmt.Sprintf("no gateway database at %s: give the gateway's configuration with --config FILE "+
			"(or set OFFSITE_DATA_DIR or OFFSITE_STORE_DSN as the gateway has them)", p)}
	}
	return nil
}

func cmdProfiles(args []string, stdout, stderr io.Writer) error {
	if len(args) != 2 || args[0] != "validate" {
		return usageError{"usage: offsite profiles validate DIR"}
	}
	// The repository's firmware-profiles folder keeps the shipped profiles in builtin/.
	if m, _ := filepath.Glob(filepath.Join(args[1], "*.y*ml")); len(m) == 0 {
		if b, _ := filepath.Glob(filepath.Join(args[1], "builtin", "*.y*ml")); len(b) > 0 {
			args[1] = filepath.Join(args[1], "builtin")
		}
	}
	problems := profiles.ValidateDir(args[1])
	for _, p := range problems {
		fmt.Fprintln(stderr, p)
	}
	if len(problems) > 0 {
		return fmt.Errorf("%d problem(s) in %s", len(problems), args[1])
	}
	fmt.Fprintf(stdout, "%s: all profiles valid\n", args[1])
	return nil
}
