package api

import (
	"bytes"
	"encoding/json"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/transit-hq/transit/models"
)

// checkBodyText refuses a JSON body holding text that the database cannot
// store — invalid UTF-8, or a NUL (\u0000) — in any string or key at any
// depth (a policy's freeze reason, a target's config), naming the field.
// JSON's decoder would silently turn invalid UTF-8 into U+FFFD, and a NUL
// only fails later, in the database; both are refused here, the same on
// SQLite as on Postgres.
func checkBodyText(body []byte) error {
	if !utf8.Valid(body) {
		return models.Invalid(fieldOr(jsonPathAt(body, firstInvalidUTF8(body))), "is not valid UTF-8 text")
	}
	if !bytes.Contains(body, []byte(`\u0000`)) {
		return nil
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil // not JSON: the decoder that follows says so
	}
	if path, ok := findNUL(v, ""); ok {
		return models.Invalid(fieldOr(path), "contains a NUL character (\\u0000), which cannot be stored")
	}
	return nil
}

func fieldOr(path string) string {
	if path == "" {
		return "body"
	}
	return path
}

func firstInvalidUTF8(b []byte) int {
	for i := 0; i < len(b); {
		r, size := utf8.DecodeRune(b[i:])
		if r == utf8.RuneError && size == 1 {
			return i
		}
		i += size
	}
	return len(b)
}

// findNUL returns the path of the first string or key (in key order) that
// holds a NUL.
func findNUL(v any, path string) (string, bool) {
	switch t := v.(type) {
	case string:
		return path, strings.IndexByte(t, 0) >= 0
	case map[string]any:
		for _, k := range models.SortedKeys(t) {
			p := joinPath(path, k)
			if strings.IndexByte(k, 0) >= 0 {
				return p, true
			}
			if found, ok := findNUL(t[k], p); ok {
				return found, true
			}
		}
	case []any:
		for i, e := range t {
			if found, ok := findNUL(e, path+"["+strconv.Itoa(i)+"]"); ok {
				return found, true
			}
		}
	}
	return "", false
}

func joinPath(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

// jsonPathAt returns the path (policy.freezes[0].reason) of the JSON value
// or key in which byte offset off falls, or "" when it cannot tell.
func jsonPathAt(body []byte, off int) string {
	type frame struct {
		object    bool
		key       string
		index     int
		expectKey bool
	}
	var stack []frame
	path := func() string {
		var b strings.Builder
		for _, f := range stack {
			if f.object {
				if b.Len() > 0 {
					b.WriteByte('.')
				}
				b.WriteString(f.key)
			} else {
				b.WriteString("[" + strconv.Itoa(f.index) + "]")
			}
		}
		return b.String()
	}
	consumed := func() {
		if len(stack) == 0 {
			return
		}
		top := &stack[len(stack)-1]
		if top.object {
			top.expectKey = true
		} else {
			top.index++
		}
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	for {
		tok, err := dec.Token()
		if err != nil {
			return path()
		}
		end := int(dec.InputOffset())
		switch t := tok.(type) {
		case json.Delim:
			switch t {
			case '{', '[':
				stack = append(stack, frame{object: t == '{', expectKey: t == '{'})
			default:
				stack = stack[:len(stack)-1]
				consumed()
			}
		default:
			if len(stack) > 0 && stack[len(stack)-1].object && stack[len(stack)-1].expectKey {
				top := &stack[len(stack)-1]
				top.key, top.expectKey = toString(t), false
				if end > off {
					return path()
				}
				continue
			}
			if end > off {
				return path()
			}
			consumed()
		}
	}
}

func toString(t json.Token) string {
	if s, ok := t.(string); ok {
		return s
	}
	return ""
}
