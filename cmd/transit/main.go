// Command transit is Transit's one binary: `transit dev` runs everything on
// one machine, `transit server` the REST API, `transit worker` the Temporal
// worker, and the client verbs talk to a running server. Flags, config and
// wiring only: the logic lives in the packages.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"syscall"
)

const usage = `transit — release and deployment management on Temporal

Usage:
  transit dev [--demo] [--dir .transit] [--temporal-bin bin/temporal]
                                everything on one machine: Temporal dev server + UI,
                                worker and API on an embedded SQLite database
  transit server                the REST API (configured by TRANSIT_* variables)
  transit worker                the Temporal worker
  transit migrate               apply database migrations and exit
  transit tokens issue --subject NAME [--roles r1,r2] [--teams t1] [--groups a,b] [--description TEXT]
                                issue an API token straight into the database
                                (bootstrap an admin for 'transit server')
  transit version               print the version

Client verbs (talk to a running API: --url / $TRANSIT_URL, --token / $TRANSIT_TOKEN):
  transit release create --app NAME --version V --artifact NAME=IMAGE [--criterion K=V]
  transit deploy --app NAME --version V --env ENV [--strategy JSON] [--reason TEXT] [--watch]
  transit approve ID [--comment TEXT]     transit reject ID [--comment TEXT]
  transit status ID                       transit watch ID
  transit pause|resume|abort|rollback ID [--reason TEXT]
  transit audit head [--seq N]            transit audit export [--since T] [--until T] [--out FILE]
  transit audit verify FILE [--public-key HEX|@FILE]   (offline: no server needed)

Run 'transit COMMAND --help' for a command's flags.
`

// version is set by the build (-ldflags "-X main.version=…").
var version = "dev"

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	go func() {
		// The first Ctrl-C stops cleanly; a second one, while that takes
		// its time, ends the process at once.
		<-ctx.Done()
		stop()
	}()
	if err := run(ctx, os.Args[1:]); err != nil {
		if !errors.Is(err, errUsage) {
			fmt.Fprintln(os.Stderr, "transit:", err)
		}
		os.Exit(1)
	}
}

var errUsage = errors.New("usage")

func run(ctx context.Context, args []string) error {
	if len(args) == 0 {
		fmt.Fprint(os.Stderr, usage)
		return errUsage
	}
	switch args[0] {
	case "dev":
		return runDev(ctx, args[1:])
	case "server":
		return runServer(ctx, args[1:])
	case "worker":
		return runWorker(ctx, args[1:])
	case "migrate":
		return runMigrate(ctx, args[1:])
	case "tokens":
		return runTokens(ctx, args[1:])
	case "deploy":
		return runDeploy(ctx, args[1:])
	case "approve", "reject":
		return runVote(ctx, args[0], args[1:])
	case "pause", "resume", "abort", "rollback":
		return runControl(ctx, args[0], args[1:])
	case "status":
		return runStatus(ctx, args[1:])
	case "watch":
		return runWatch(ctx, args[1:])
	case "release":
		return runRelease(ctx, args[1:])
	case "audit":
		return runAudit(ctx, args[1:])
	case "version", "--version":
		fmt.Println("transit", version)
		return nil
	case "help", "-h", "--help":
		fmt.Print(usage)
		return nil
	}
	fmt.Fprintf(os.Stderr, "transit: unknown command %q\n\n%s", args[0], usage)
	return errUsage
}
