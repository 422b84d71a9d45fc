package activities

import (
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// 5xx, 408 and 429 are tried again; any other answer is final.
func TestRetryableStatus(t *testing.T) {
	for code, want := range map[int]bool{500: true, 502: true, 503: true, 408: true, 429: true,
		400: false, 401: false, 404: false, 410: false, 422: false, 302: false} {
		require.Equal(t, want, retryableStatus(code), "%d", code)
	}
}

// Retry-After in seconds or as an HTTP date, bounded, never negative.
func TestParseRetryAfter(t *testing.T) {
	now := time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)
	require.Equal(t, 42*time.Second, parseRetryAfter(" 42 ", now))
	require.Equal(t, 90*time.Second, parseRetryAfter(now.Add(90*time.Second).Format(http.TimeFormat), now))
	require.Equal(t, time.Duration(0), parseRetryAfter(now.Add(-time.Minute).Format(http.TimeFormat), now), "a date in the past")
	require.Equal(t, time.Duration(0), parseRetryAfter("", now))
	require.Equal(t, time.Duration(0), parseRetryAfter("soon", now))
	require.Equal(t, MaxRetryAfter, parseRetryAfter("999999", now), "bounded")
}
