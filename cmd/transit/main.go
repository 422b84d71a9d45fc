// Command transit is Transit's one binary: `transit dev` runs everything on
// one machine, `transit server` the REST API, `transit worker` the Temporal
// worker, and the client verbs talk to a running server. Flags, config and
// wiring only: the logic lives in the packages.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/transit-hq/transit/apiclient"
)

const rootLong = `transit — release and deployment management on Temporal

'transit dev' runs everything on one machine; 'transit server' and
'transit worker' run Transit in production (configured by TRANSIT_*
variables). The client verbs talk to a running API: --url ($TRANSIT_URL,
default http://localhost:8080) and --token ($TRANSIT_TOKEN, then
.transit/admin.token). With -o json they print the API's answer as JSON on
standard output, and nothing else.

Exit status: 0 done; 1 failed (network, server error); 2 usage error
(unknown command or flag, missing argument); 3 refused by the API (a 4xx:
its code and message on standard error); 4 the deployment did not complete
('deploy --watch', 'watch').`

// version is set by the build (-ldflags "-X main.version=…").
var version = "dev"

// Exit statuses.
const (
	exitOK           = 0
	exitFailed       = 1
	exitUsage        = 2
	exitRefused      = 3
	exitNotCompleted = 4
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	go func() {
		// The first Ctrl-C stops cleanly; a second one, while that takes
		// its time, ends the process at once.
		<-ctx.Done()
		stop()
	}()
	code := execute(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// execute runs the command line args and returns the exit status; what
// the command prints goes to stdout and stderr.
func execute(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	root := newRootCommand(stdout, stderr)
	if args == nil {
		args = []string{} // nil would make cobra read os.Args
	}
	root.SetArgs(normalizeArgs(root, args))
	cmd, err := root.ExecuteContextC(ctx)
	if err == nil {
		return exitOK
	}
	code := exitCode(err)
	var ue *usageError
	if errors.As(err, &ue) && ue.silent {
		return code
	}
	fmt.Fprintln(stderr, "transit:", err)
	if code == exitUsage && cmd != nil {
		fmt.Fprintf(stderr, "Run '%s --help' for usage.\n", cmd.CommandPath())
	}
	return code
}

// exitCode maps an error to the exit status: what cobra itself refuses
// (an unknown command or flag, a wrong number of arguments) is a usage
// error, as is a usageError; of what a command returns, an API's 4xx is a
// refusal, a deployment that ended otherwise than completed is "not
// completed", and anything else (the network, a 5xx) a failure.
func exitCode(err error) int {
	var ue *usageError
	if errors.As(err, &ue) {
		return exitUsage
	}
	var re *runError
	if !errors.As(err, &re) {
		return exitUsage
	}
	var nc *notCompletedError
	if errors.As(err, &nc) {
		return exitNotCompleted
	}
	var ae *apiclient.Error
	if errors.As(err, &ae) && ae.Refused() {
		return exitRefused
	}
	return exitFailed
}

// usageError is a command line that does not say what to do.
type usageError struct {
	err    error
	silent bool // the usage was printed already
}

func (e *usageError) Error() string { return e.err.Error() }
func (e *usageError) Unwrap() error { return e.err }

func usagef(format string, args ...any) error {
	return &usageError{err: fmt.Errorf(format, args...)}
}

// runError is an error a command's RunE returned, as against one of
// cobra's own.
type runError struct{ err error }

func (e *runError) Error() string { return e.err.Error() }
func (e *runError) Unwrap() error { return e.err }

// newRootCommand builds the command tree.
func newRootCommand(stdout, stderr io.Writer) *cobra.Command {
	a := &cli{stdout: stdout, stderr: stderr}
	cobra.EnableCommandSorting = false // in the order added: the order of work
	root := &cobra.Command{
		Use:           "transit",
		Short:         "Release and deployment management on Temporal",
		Long:          rootLong,
		Version:       version,
		Args:          cobra.ArbitraryArgs,
		SilenceErrors: true,
		SilenceUsage:  true,
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) == 0 {
				cmd.SetOut(stderr)
				_ = cmd.Help()
				return &usageError{err: errors.New("no command"), silent: true}
			}
			return unknownCommand(cmd, args[0])
		},
	}
	root.SetOut(stdout)
	root.SetErr(stderr)
	root.SetVersionTemplate("transit {{.Version}}\n")
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return &usageError{err: err} })
	root.AddGroup(
		&cobra.Group{ID: "run", Title: "Run Transit:"},
		&cobra.Group{ID: "client", Title: "Client verbs (talk to a running API):"},
		&cobra.Group{ID: "other", Title: "Other commands:"},
	)
	root.SetHelpCommandGroupID("other")
	root.SetCompletionCommandGroupID("other")

	for _, c := range []*cobra.Command{a.devCommand(), a.serverCommand(), a.workerCommand(), a.migrateCommand(), a.tokensCommand()} {
		c.GroupID = "run"
		root.AddCommand(c)
	}
	for _, c := range []*cobra.Command{
		a.releasesCommand(), a.deployCommand(), a.voteCommand("approve"), a.voteCommand("reject"),
		a.statusCommand(), a.watchCommand(),
		a.controlCommand("pause"), a.controlCommand("resume"), a.controlCommand("abort"), a.controlCommand("rollback"),
		a.deploymentsCommand(), a.applicationsCommand(), a.environmentsCommand(), a.auditCommand(),
		a.kpisCommand(),
	} {
		c.GroupID = "client"
		root.AddCommand(c)
	}
	versionCmd := &cobra.Command{
		Use:   "version",
		Short: "Print the version",
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			fmt.Fprintln(a.stdout, "transit", version)
			return nil
		},
	}
	versionCmd.GroupID = "other"
	root.AddCommand(versionCmd)
	// cobra's completion command, made now so that a shell it does not
	// know is a usage error like any unknown command.
	root.InitDefaultCompletionCmd()
	for _, c := range root.Commands() {
		if c.Name() == "completion" {
			group(c)
		}
	}
	markRunErrors(root)
	return root
}

// markRunErrors wraps every command's RunE so that its errors are told
// apart from cobra's own.
func markRunErrors(c *cobra.Command) {
	if run := c.RunE; run != nil {
		c.RunE = func(cmd *cobra.Command, args []string) error {
			if err := run(cmd, args); err != nil {
				return &runError{err: err}
			}
			return nil
		}
	}
	for _, sub := range c.Commands() {
		markRunErrors(sub)
	}
}

// group is a command that only holds others: alone, or with a word that
// is none of them, it is a usage error.
func group(c *cobra.Command) *cobra.Command {
	c.Args = cobra.ArbitraryArgs
	c.RunE = func(cmd *cobra.Command, args []string) error {
		if len(args) == 0 {
			var names []string
			for _, sub := range cmd.Commands() {
				if sub.IsAvailableCommand() {
					names = append(names, sub.Name())
				}
			}
			return usagef("%s needs a command: %s", verb(cmd), strings.Join(names, ", "))
		}
		return unknownCommand(cmd, args[0])
	}
	return c
}

func unknownCommand(cmd *cobra.Command, name string) error {
	msg := fmt.Sprintf("unknown command %q for %q", name, cmd.CommandPath())
	if cmd.SuggestionsMinimumDistance <= 0 {
		cmd.SuggestionsMinimumDistance = 2
	}
	if s := cmd.SuggestionsFor(name); len(s) > 0 {
		msg += "; did you mean " + strings.Join(s, " or ") + "?"
	}
	return &usageError{err: errors.New(msg)}
}

// verb is a command's path without "transit", which the error's prefix says.
func verb(cmd *cobra.Command) string {
	if p := cmd.CommandPath(); strings.Contains(p, " ") {
		_, rest, _ := strings.Cut(p, " ")
		return rest
	}
	return cmd.CommandPath()
}

// noArgs refuses positional arguments.
func noArgs(_ *cobra.Command, args []string) error {
	if len(args) > 0 {
		return usagef("unexpected argument %q", args[0])
	}
	return nil
}

// oneArg asks for exactly one positional argument, named name.
func oneArg(name string) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		switch {
		case len(args) == 0:
			return usagef("%s needs %s", verb(cmd), name)
		case len(args) > 1:
			return usagef("%s takes one %s; unexpected argument %q", verb(cmd), name, args[1])
		}
		return nil
	}
}

// normalizeArgs keeps the spelling of Go's flag package, which transit's
// commands used before: a long flag with one dash (-watch, -app=x) is
// read as --watch, --app=x.
func normalizeArgs(root *cobra.Command, args []string) []string {
	cmd, _, err := root.Find(args)
	if err != nil || cmd == nil {
		return args
	}
	lookup := func(name string) *pflag.Flag {
		if f := cmd.Flags().Lookup(name); f != nil {
			return f
		}
		return cmd.InheritedFlags().Lookup(name)
	}
	out := make([]string, 0, len(args))
	takesValue := false // the previous argument is a flag whose value this is
	for i, arg := range args {
		if arg == "--" {
			return append(out, args[i:]...)
		}
		if takesValue {
			takesValue = false
			out = append(out, arg)
			continue
		}
		if len(arg) > 2 && arg[0] == '-' {
			dashes := "-"
			name := arg[1:]
			if name[0] == '-' {
				dashes, name = "--", name[1:]
			}
			name, _, hasValue := strings.Cut(name, "=")
			if f := lookup(name); f != nil && len(name) > 1 {
				arg = "--" + strings.TrimPrefix(arg, dashes)
				takesValue = !hasValue && f.NoOptDefVal == ""
			}
		}
		out = append(out, arg)
	}
	return out
}
