// Command offsite is the Offsite gateway: one pure-Go binary that pulls a site's cameras,
// collects its sensors, serves live video and the API, and hands every event with evidence to
// the city's supervision core and the provincial platform.
//
//	offsite serve --config FILE        production
//	offsite demo [--data DIR] …        everything simulated, on 127.0.0.1
//	offsite devices import FILE.csv    bulk registration (all or nothing)
//	offsite devices export             CSV to standard output
//	offsite profiles validate DIR      check firmware profile files
//	offsite rtsp-consumers add NAME    RTSP re-serve logins (add, list, revoke)
//	offsite version
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

// version is set at build time with -ldflags "-X main.version=…".
var version = "dev"

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// exitUsage is the exit code for a command line that cannot be understood.
const exitUsage = 2

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		usage(stderr)
		return exitUsage
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	var err error
	switch args[0] {
	case "serve":
		err = cmdServe(ctx, args[1:], stdout, stderr)
	case "demo":
		err = cmdDemo(ctx, args[1:], stdout, stderr)
	case "devices":
		err = cmdDevices(ctx, args[1:], stdout, stderr)
	case "gateways":
		err = cmdGateways(ctx, args[1:], stdout, stderr)
	case "profiles":
		err = cmdProfiles(args[1:], stdout, stderr)
	case "rtsp-consumers":
		err = cmdRTSPConsumers(ctx, args[1:], stdout, stderr)
	case "audit":
		err = cmdAudit(ctx, args[1:], stdout, stderr)
	case "version", "--version", "-v":
		fmt.Fprintf(stdout, "offsite %s\n", version)
		return 0
	case "help", "-h", "--help":
		usage(stdout)
		return 0
	default:
		fmt.Fprintf(stderr, "offsite: unknown command %q\n\n", args[0])
		usage(stderr)
		return exitUsage
	}
	if err == nil {
		return 0
	}
	var ue usageError
	if errors.As(err, &ue) || errors.Is(err, flag.ErrHelp) {
		if !errors.Is(err, flag.ErrHelp) {
			fmt.Fprintf(stderr, "offsite: %v\n", err)
		}
		return exitUsage
	}
	fmt.Fprintf(stderr, "offsite: %v\n", err)
	return 1
}

type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg }

func usage(w io.Writer) {
	fmt.Fprint(w, `Offsite — off-site supervision gateway (非现场监管网关)

Usage:
  offsite serve --config FILE [--check]   run the gateway (--check: validate the config and exit)
  offsite demo [--data DIR] [--http ADDR] [--province-url URL]
                                          run everything simulated on 127.0.0.1
  offsite devices import [--config FILE] FILE.csv
                                          register sites and devices from CSV (UTF-8 or GBK), all or nothing
  offsite devices export [--config FILE] [--gbk] [-o FILE]
                                          write every site and device as CSV
  offsite gateways add --config FILE --id ID [--name NAME] [--url URL]
                                          enrol a site gateway below this centre; prints its secret once
  offsite gateways list|remove|rotate-secret --config FILE [ID]
                                          the site gateways below this centre and their health
  offsite profiles validate DIR           check firmware profile YAML files
  offsite rtsp-consumers add|list|revoke [--config FILE] [--note TEXT] [NAME]
                                          RTSP re-serve logins, one per worker or recorder
  offsite audit verify [--config FILE] [--json]
                                          check the audit log's SM3 hash chain; exit 1 naming the
                                          first broken record
  offsite version

Every config key can be overridden by an environment variable OFFSITE_<KEY>, e.g. OFFSITE_HTTP_LISTEN.
`)
}
