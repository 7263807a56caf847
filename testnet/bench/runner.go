package bench

import (
	"context"
	"fmt"
	"log/slog"
	"strings"

	"github.com/commons-p2p/commons/testnet/sim"
)

// runner is the T of standalone: Fatal ends the run with an error, Cleanup
// functions run at its end, logs go to the logger.
type runner struct {
	name     string
	log      *slog.Logger
	ctx      context.Context
	cleanups []func()
	errs     []string
}

// runnerFatal is the panic with which a runner's Fatal unwinds.
type runnerFatal struct{ msg string }

func (r *runner) Helper()                         {}
func (r *runner) Logf(format string, args ...any) { r.log.Info(fmt.Sprintf(format, args...)) }
func (r *runner) Errorf(format string, args ...any) {
	r.errs = append(r.errs, fmt.Sprintf(format, args...))
}
func (r *runner) Fatal(args ...any) { panic(runnerFatal{fmt.Sprint(args...)}) }
func (r *runner) Fatalf(format string, args ...any) {
	panic(runnerFatal{fmt.Sprintf(format, args...)})
}
func (r *runner) Cleanup(f func())         { r.cleanups = append(r.cleanups, f) }
func (r *runner) Failed() bool             { return len(r.errs) > 0 }
func (r *runner) Name() string             { return r.name }
func (r *runner) Context() context.Context { return r.ctx }

// standalone runs fn with a runner, on the calling goroutine (Fatal must be
// called there, as with testing.T), and reports its failure as an error.
// The runner's Context is done when ctx is, or when fn returns.
func standalone(ctx context.Context, name string, log *slog.Logger, fn func(t sim.T)) (err error) {
	ctx, cancel := context.WithCancel(ctx)
	r := &runner{name: name, log: log, ctx: ctx}
	defer func() {
		if p := recover(); p != nil {
			f, ok := p.(runnerFatal)
			if !ok {
				panic(p)
			}
			r.errs = append(r.errs, f.msg)
		}
		cancel() // as testing does, before the cleanups
		for i := len(r.cleanups) - 1; i >= 0; i-- {
			r.cleanups[i]()
		}
		if len(r.errs) > 0 {
			err = fmt.Errorf("%s: %s", name, strings.Join(r.errs, "; "))
		}
	}()
	fn(r)
	return nil
}

var _ sim.T = (*runner)(nil)
