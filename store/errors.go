package store

import (
	"context"
	"database/sql/driver"
	"errors"
	"io"
	"net"
	"strings"
	"syscall"

	"github.com/jackc/pgx/v5/pgconn"
)

// Unavailable reports whether err says the database could not be reached or
// went away (an outage, a restart, a full connection pool), as opposed to a
// refusal of what was asked. Such an error is worth waiting out.
func Unavailable(err error) bool {
	if err == nil {
		return false
	}
	var (
		pgErr   *pgconn.PgError
		connErr *pgconn.ConnectError
		netErr  net.Error
	)
	switch {
	case errors.As(err, &pgErr):
		switch {
		case strings.HasPrefix(pgErr.Code, "08"), // connection exception
			pgErr.Code == "57P01", pgErr.Code == "57P02", pgErr.Code == "57P03", // shutdown, cannot connect now
			pgErr.Code == "53300": // too many connections
			return true
		}
		return false
	case errors.As(err, &connErr), errors.As(err, &netErr),
		errors.Is(err, syscall.ECONNREFUSED), errors.Is(err, syscall.ECONNRESET), errors.Is(err, syscall.EPIPE),
		errors.Is(err, driver.ErrBadConn), errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, io.EOF):
		return true
	}
	msg := err.Error()
	for _, s := range []string{"connection refused", "conn closed", "connection reset", "broken pipe",
		"server closed the connection", "the database system is", "failed to connect", "no connection", "bad connection"} {
		if strings.Contains(msg, s) {
			return true
		}
	}
	return false
}

// Permanent reports whether the database refused the data itself (a value
// it cannot store, a constraint), so that writing it again cannot succeed.
func Permanent(err error) bool {
	if err == nil || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return false
	}
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		return strings.HasPrefix(pgErr.Code, "22") || strings.HasPrefix(pgErr.Code, "23") || strings.HasPrefix(pgErr.Code, "42")
	}
	msg := err.Error()
	for _, s := range []string{"invalid byte sequence", "unsupported Unicode escape", "constraint failed", "CHECK constraint"} {
		if strings.Contains(msg, s) {
			return true
		}
	}
	return false
}
