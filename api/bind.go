package api

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"

	"github.com/gin-gonic/gin"

	"github.com/transit-hq/transit/store"
)

// MaxBodyBytes bounds a request body.
const MaxBodyBytes = 1 << 20

// bind decodes the JSON body into dst strictly: one JSON object, no unknown
// fields, no trailing data, at most MaxBodyBytes.
func bind(c *gin.Context, dst any) error {
	// curl -d sends application/x-www-form-urlencoded by default; a JSON
	// body under that label is accepted, as people type it that way.
	if ct := c.ContentType(); ct != "" && ct != "application/json" && ct != "application/x-www-form-urlencoded" {
		return &apiError{status: http.StatusUnsupportedMediaType, code: CodeBadRequest,
			message: fmt.Sprintf("Content-Type %q is not supported: send application/json", ct)}
	}
	body, err := io.ReadAll(http.MaxBytesReader(c.Writer, c.Request.Body, MaxBodyBytes))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return &apiError{status: http.StatusRequestEntityTooLarge, code: CodeBodyTooLarge,
				message: fmt.Sprintf("the request body is larger than %d bytes", MaxBodyBytes)}
		}
		return badRequest("could not read the request body: " + err.Error())
	}
	if len(bytes.TrimSpace(body)) == 0 {
		return badRequest("the request body is empty: send a JSON object")
	}
	if err := checkBodyText(body); err != nil {
		return err
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(dst); err != nil {
		return decodeError(err)
	}
	if dec.More() {
		return badRequest("the request body has data after the JSON object")
	}
	return nil
}

func decodeError(err error) error {
	var (
		se  *json.SyntaxError
		ute *json.UnmarshalTypeError
	)
	switch {
	case errors.As(err, &se):
		return badRequest(fmt.Sprintf("the body is not valid JSON (at byte %d): %v", se.Offset, err))
	case errors.As(err, &ute):
		field := ute.Field
		if field == "" {
			return badRequest(fmt.Sprintf("the body must be a JSON object, not a %s", ute.Value))
		}
		return badRequest(fmt.Sprintf("field %q must be a %s, not a %s", field, jsonType(ute.Type.String()), ute.Value))
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		return badRequest(fmt.Sprintf("unknown field %s: check the spelling against the API docs", strings.TrimPrefix(err.Error(), "json: unknown field ")))
	case errors.Is(err, io.ErrUnexpectedEOF):
		return badRequest("the body is truncated JSON")
	}
	return badRequest("the body could not be read as JSON: " + strings.TrimPrefix(err.Error(), "json: "))
}

func jsonType(goType string) string {
	switch {
	case strings.HasPrefix(goType, "int"), strings.HasPrefix(goType, "uint"), strings.HasPrefix(goType, "float"):
		return "number"
	case goType == "string":
		return "string"
	case goType == "bool":
		return "boolean"
	case strings.HasPrefix(goType, "[]"):
		return "array"
	}
	return "object"
}

// listOptions reads limit, cursor and the named filters from the query.
func listOptions(c *gin.Context, filters ...string) (store.ListOptions, error) {
	opt := store.ListOptions{After: c.Query("cursor"), Filters: map[string]string{}}
	if s := c.Query("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > store.MaxPageSize {
			return opt, badRequest(fmt.Sprintf("limit %q must be a whole number from 1 to %d", s, store.MaxPageSize))
		}
		opt.Limit = n
	}
	allowed := map[string]bool{"limit": true, "cursor": true}
	for _, f := range filters {
		allowed[f] = true
		opt.Filters[f] = c.Query(f)
	}
	for k := range c.Request.URL.Query() {
		if !allowed[k] {
			return opt, badRequest(fmt.Sprintf("unknown query parameter %q: this list filters on %s", k, strings.Join(filters, ", ")))
		}
	}
	return opt, nil
}
