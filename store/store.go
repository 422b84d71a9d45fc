// Package store keeps Transit's state in a SQL database through gorm:
// Postgres in production, an embedded SQLite file for `transit dev`. Every
// write goes through a transaction that also appends to the audit log, so a
// write and its audit event land together or not at all.
package store

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/glebarez/sqlite"
	"gorm.io/driver/postgres"
	"gorm.io/gorm"
	"gorm.io/gorm/logger"
)

// Dialects.
const (
	DialectPostgres = "postgres"
	DialectSQLite   = "sqlite"
)

// Store is Transit's database.
type Store struct {
	db      *gorm.DB
	dialect string
	log     *slog.Logger
	seal    *sealer
	// pendingAudit: audit events go to audit_pending, for the sealer
	// (Postgres, once migrated to auditPendingVersion).
	pendingAudit bool
}

// Actor is who performs a write, as the audit log records it.
type Actor struct {
	Subject   string
	RequestID string
}

// Open connects to url and runs every pending migration. url is a Postgres
// URL (postgres://…) or an SQLite file (sqlite:///path/to/file.db, or a bare
// path).
func Open(ctx context.Context, url string, log *slog.Logger) (*Store, error) {
	s, err := Connect(url, log)
	if err != nil {
		return nil, err
	}
	if err := s.Migrate(ctx); err != nil {
		s.Close()
		return nil, err
	}
	return s, nil
}

// Connect connects to url without migrating.
func Connect(url string, log *slog.Logger) (*Store, error) {
	cfg := &gorm.Config{
		TranslateError: true,
		Logger:         newGormLogger(log),
		NowFunc:        func() time.Time { return time.Now().UTC().Truncate(time.Microsecond) },
	}
	var (
		db      *gorm.DB
		err     error
		dialect string
	)
	switch {
	case strings.HasPrefix(url, "postgres://"), strings.HasPrefix(url, "postgresql://"):
		dialect = DialectPostgres
		db, err = gorm.Open(postgres.Open(url), cfg)
	default:
		dialect = DialectSQLite
		path := strings.TrimPrefix(strings.TrimPrefix(url, "sqlite://"), "file:")
		if path == "" {
			return nil, errors.New("database URL is empty: set TRANSIT_DATABASE_URL to postgres://… or sqlite:///path/file.db")
		}
		if dir := filepath.Dir(path); dir != "" {
			if err := os.MkdirAll(dir, 0o755); err != nil {
				return nil, fmt.Errorf("create folder for SQLite database: %w", err)
			}
		}
		dsn := path + "?_pragma=busy_timeout(10000)&_pragma=journal_mode(WAL)&_pragma=foreign_keys(1)&_pragma=synchronous(NORMAL)"
		db, err = gorm.Open(sqlite.Open(dsn), cfg)
	}
	if err != nil {
		return nil, fmt.Errorf("open %s database: %w", dialect, err)
	}
	sqlDB, err := db.DB()
	if err != nil {
		return nil, fmt.Errorf("open %s database: %w", dialect, err)
	}
	if dialect == DialectSQLite {
		// One writer at a time is what SQLite does anyway; one connection
		// turns "database is locked" into orderly queueing.
		sqlDB.SetMaxOpenConns(1)
	} else {
		// Idle connections are kept as many as may be open: a burst of
		// requests otherwise closes and reopens connections (a Postgres
		// backend started each time), which cost more than the requests.
		// They are closed after a few idle minutes instead.
		sqlDB.SetMaxOpenConns(maxConns)
		sqlDB.SetMaxIdleConns(maxConns)
		sqlDB.SetConnMaxIdleTime(5 * time.Minute)
		sqlDB.SetConnMaxLifetime(30 * time.Minute)
	}
	return &Store{db: db, dialect: dialect, log: log, seal: &sealer{}}, nil
}

// maxConns is how many Postgres connections one process opens at most.
const maxConns = 20

// Dialect returns DialectPostgres or DialectSQLite.
func (s *Store) Dialect() string { return s.dialect }

// DB returns the underlying gorm handle, for tests and migrations.
func (s *Store) DB() *gorm.DB { return s.db }

// Ping checks that the database answers.
func (s *Store) Ping(ctx context.Context) error {
	sqlDB, err := s.db.DB()
	if err != nil {
		return err
	}
	return sqlDB.PingContext(ctx)
}

// logger is the store's logger, or the process's.
func (s *Store) logger() *slog.Logger {
	if s.log != nil {
		return s.log
	}
	return slog.Default()
}

// Close releases the connections.
func (s *Store) Close() error {
	// No seal starts from now on; one under way ends first (what is still
	// pending is sealed by the next process that writes or reads).
	s.seal.mu.Lock()
	s.seal.closed = true
	s.seal.mu.Unlock()
	s.seal.done.Wait()
	sqlDB, err := s.db.DB()
	if err != nil {
		return err
	}
	return sqlDB.Close()
}

// gormLogger sends gorm's errors and slow queries to slog; record-not-found
// is a normal answer, not an error.
type gormLogger struct{ log *slog.Logger }

func newGormLogger(log *slog.Logger) logger.Interface {
	if log == nil {
		log = slog.Default()
	}
	return gormLogger{log: log}
}

func (l gormLogger) LogMode(logger.LogLevel) logger.Interface { return l }
func (l gormLogger) Info(ctx context.Context, msg string, args ...any) {
	l.log.DebugContext(ctx, fmt.Sprintf(msg, args...))
}
func (l gormLogger) Warn(ctx context.Context, msg string, args ...any) {
	l.log.WarnContext(ctx, fmt.Sprintf(msg, args...))
}
func (l gormLogger) Error(ctx context.Context, msg string, args ...any) {
	l.log.ErrorContext(ctx, fmt.Sprintf(msg, args...))
}
func (l gormLogger) Trace(ctx context.Context, begin time.Time, fc func() (string, int64), err error) {
	elapsed := time.Since(begin)
	switch {
	case err != nil && !errors.Is(err, gorm.ErrRecordNotFound) && !errors.Is(err, gorm.ErrDuplicatedKey):
		sql, rows := fc()
		l.log.DebugContext(ctx, "sql error", "err", err, "sql", sql, "rows", rows, "elapsed", elapsed)
	case elapsed > 500*time.Millisecond:
		sql, rows := fc()
		l.log.WarnContext(ctx, "slow sql", "sql", sql, "rows", rows, "elapsed", elapsed)
	}
}
