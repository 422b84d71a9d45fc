package models

import (
	"database/sql/driver"
	"encoding/json"
	"fmt"
	"time"
)

// JSONValue stores any JSON-encodable value in a single column (JSONB on
// Postgres, TEXT on SQLite).
type JSONValue[T any] struct {
	V T
}

// NewJSON wraps v.
func NewJSON[T any](v T) JSONValue[T] { return JSONValue[T]{V: v} }

// Value implements driver.Valuer.
func (j JSONValue[T]) Value() (driver.Value, error) {
	b, err := json.Marshal(j.V)
	if err != nil {
		return nil, err
	}
	return string(b), nil
}

// Scan implements sql.Scanner.
func (j *JSONValue[T]) Scan(src any) error {
	var b []byte
	switch s := src.(type) {
	case nil:
		var zero T
		j.V = zero
		return nil
	case []byte:
		b = s
	case string:
		b = []byte(s)
	default:
		return fmt.Errorf("scan JSON column: unsupported type %T", src)
	}
	return json.Unmarshal(b, &j.V)
}

// MarshalJSON encodes the wrapped value.
func (j JSONValue[T]) MarshalJSON() ([]byte, error) { return json.Marshal(j.V) }

// UnmarshalJSON decodes into the wrapped value.
func (j *JSONValue[T]) UnmarshalJSON(b []byte) error { return json.Unmarshal(b, &j.V) }

// Duration is a time.Duration written in JSON as a Go duration string
// ("90s", "30m", "24h").
type Duration time.Duration

// D returns the duration as a time.Duration.
func (d Duration) D() time.Duration { return time.Duration(d) }

// MarshalJSON writes the duration as a string.
func (d Duration) MarshalJSON() ([]byte, error) {
	return json.Marshal(time.Duration(d).String())
}

// UnmarshalJSON reads a duration string such as "15m".
func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("a duration is a string such as \"15m\" or \"24h\"")
	}
	if s == "" {
		*d = 0
		return nil
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return fmt.Errorf("%q is not a duration such as \"15m\" or \"24h\"", s)
	}
	*d = Duration(v)
	return nil
}
