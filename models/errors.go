package models

import (
	"errors"
	"fmt"
	"sort"
	"strings"
)

// Sentinel errors of the domain. The API maps them to HTTP status codes in
// one place (api/errors.go) with errors.Is.
var (
	// ErrNotFound: the named resource does not exist.
	ErrNotFound = errors.New("not found")
	// ErrConflict: the request clashes with existing state (a duplicate
	// name, a resource still referenced, an illegal state transition).
	ErrConflict = errors.New("conflict")
	// ErrInvalid: the request is well formed but its values are not
	// acceptable. Wrapped by *ValidationError.
	ErrInvalid = errors.New("invalid")
	// ErrForbidden: the principal may not do this.
	ErrForbidden = errors.New("forbidden")
	// ErrUnauthenticated: no valid credentials.
	ErrUnauthenticated = errors.New("unauthenticated")
)

// FieldError names one field of a request and what is wrong with it.
type FieldError struct {
	Field  string `json:"field"`
	Reason string `json:"reason"`
}

// ValidationError collects every field error of one request, so that a
// person can fix them all at once.
type ValidationError struct {
	Fields []FieldError
}

// Add records a problem with field.
func (v *ValidationError) Add(field, format string, args ...any) {
	v.Fields = append(v.Fields, FieldError{Field: field, Reason: fmt.Sprintf(format, args...)})
}

// Merge adds every field error of other, with prefix before each field name.
func (v *ValidationError) Merge(prefix string, other error) {
	if other == nil {
		return
	}
	var ve *ValidationError
	if errors.As(other, &ve) {
		for _, f := range ve.Fields {
			name := prefix
			if f.Field != "" {
				name = prefix + "." + f.Field
			}
			v.Fields = append(v.Fields, FieldError{Field: name, Reason: f.Reason})
		}
		return
	}
	v.Add(prefix, "%s", other.Error())
}

// Err returns nil when no field error was recorded, else v.
func (v *ValidationError) Err() error {
	if v == nil || len(v.Fields) == 0 {
		return nil
	}
	return v
}

func (v *ValidationError) Error() string {
	parts := make([]string, 0, len(v.Fields))
	for _, f := range v.Fields {
		parts = append(parts, f.Field+": "+f.Reason)
	}
	sort.Strings(parts)
	return strings.Join(parts, "; ")
}

// Unwrap makes errors.Is(err, ErrInvalid) true.
func (v *ValidationError) Unwrap() error { return ErrInvalid }

// Invalid returns a ValidationError for a single field.
func Invalid(field, format string, args ...any) error {
	v := &ValidationError{}
	v.Add(field, format, args...)
	return v
}

// IsNotFound reports whether err says something does not exist.
func IsNotFound(err error) bool { return errors.Is(err, ErrNotFound) }
