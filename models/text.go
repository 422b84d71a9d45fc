package models

import (
	"strconv"
	"strings"
	"unicode/utf8"
)

// TextProblem says why s cannot be stored as text, or "" when it can. Both
// databases refuse a NUL character (Postgres in every text and JSON column),
// and neither keeps invalid UTF-8 faithfully, so both are refused at the
// door, the same on SQLite as on Postgres.
func TextProblem(s string) string {
	if !utf8.ValidString(s) {
		return "is not valid UTF-8 text"
	}
	if strings.IndexByte(s, 0) >= 0 {
		return "contains a NUL character (\\u0000), which cannot be stored"
	}
	return ""
}

// CheckText records a problem with field when s cannot be stored as text.
func CheckText(v *ValidationError, field, s string) {
	if p := TextProblem(s); p != "" {
		v.Add(field, "%s", p)
	}
}

// CleanText makes text that Transit did not take from a person (a driver's
// output, a probe's answer) safe to store: invalid UTF-8 becomes U+FFFD and
// a NUL becomes U+2400 (␀), so the text still shows where they were.
func CleanText(s string) string {
	if TextProblem(s) == "" {
		return s
	}
	s = strings.ToValidUTF8(s, "\uFFFD")
	return strings.ReplaceAll(s, "\x00", "\u2400")
}

// Cut shortens s to at most max bytes, on a character boundary, marking the
// cut with an ellipsis; it never splits a character.
func Cut(s string, max int) string {
	if len(s) <= max {
		return s
	}
	const mark = "…"
	if max <= len(mark) {
		return mark[:0]
	}
	end := max - len(mark)
	for end > 0 && !utf8.RuneStart(s[end]) {
		end--
	}
	return s[:end] + mark
}

// Plural writes n and the noun, with an s when n is not 1: "1 wave", "3 waves".
func Plural(n int, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return strconv.Itoa(n) + " " + noun + "s"
}
