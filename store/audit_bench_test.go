package store

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/transit-hq/transit/internal/testenv"
	"github.com/transit-hq/transit/models"
)

// BenchmarkAuditedWrites measures audited writes from 50 concurrent
// writers on Postgres: appended to audit_pending and sealed after (today),
// against each writer chaining its event under a table lock (the design
// it replaced, still the path of a schema from before audit_pending). Run
// by `make bench`.
func BenchmarkAuditedWrites(b *testing.B) {
	const writers, each = 50, 40
	rate := func(pending bool) float64 {
		s, err := Open(context.Background(), testenv.PostgresURL(b), nil)
		require.NoError(b, err)
		defer s.Close()
		s.pendingAudit = pending
		var wg sync.WaitGroup
		start := time.Now()
		for w := 0; w < writers; w++ {
			wg.Add(1)
			go func(w int) {
				defer wg.Done()
				for i := 0; i < each; i++ {
					err := s.CreateApplication(context.Background(), Actor{Subject: "bench"},
						&models.Application{Name: fmt.Sprintf("a-%d-%d", w, i), OwnerTeam: "perf"})
					if err != nil {
						b.Error(err)
						return
					}
				}
			}(w)
		}
		wg.Wait()
		took := time.Since(start)
		rep, err := s.VerifyAudit(context.Background())
		require.NoError(b, err)
		require.True(b, rep.OK, rep.Reason)
		require.EqualValues(b, writers*each, rep.HeadSeq, "every event chained")
		return float64(writers*each) / took.Seconds()
	}
	sealed, locked := rate(true), rate(false)
	verdict := "ok"
	if sealed < locked {
		verdict = "miss"
	}
	fmt.Printf("FIGURE audit_writes transit=%.0f/s baseline=%.0f/s ratio=%.2f goal=>1 %s (%d audited writes by %d writers; the baseline chains under a table lock)\n",
		sealed, locked, sealed/locked, verdict, writers*each, writers)
}
