package authz

import (
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/apiusers/apiusers/authz/password"
)

// Names. Usernames, emails and team names are compared in one
// canonical form everywhere: uniqueness, the usr_ rule, owner matching and
// sign-in all call CanonicalName, so two spellings that differ only by
// compatibility forms (fullwidth letters, ligatures) or by case are one
// name. Text that a person could not see or that reorders what they see
// (control, format — zero-width, bidi — and unassigned characters) is
// refused in names and in every other text field.

// CanonicalName returns the form in which names are compared: Unicode
// NFKC, then full case folding (ß → ss, the Kelvin sign → k), then NFKC
// again (folding can leave a string that is not normalized), with every
// folded character lower-cased (Cherokee letters fold to their capitals,
// and golang.org/x/text folds them back and forth): password.Fold, the one
// implementation of it, which the password policy compares with too. The
// result is stable (CanonicalName of it is itself; FuzzNames checks).
// ASCII input costs no more than a lower-casing.
func CanonicalName(s string) string {
	if isASCII(s) {
		return asciiLower(s)
	}
	return password.Fold(s)
}

// SameName reports whether name, as a client spelled it, is the name whose
// canonical form is canon. It does not allocate when name is ASCII.
func SameName(name, canon string) bool {
	if isASCII(name) {
		if len(name) != len(canon) {
			return false
		}
		for i := 0; i < len(name); i++ {
			if lowerASCII(name[i]) != canon[i] {
				return false
			}
		}
		return true
	}
	return CanonicalName(name) == canon
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= utf8.RuneSelf {
			return false
		}
	}
	return true
}

func lowerASCII(c byte) byte {
	if 'A' <= c && c <= 'Z' {
		return c + 'a' - 'A'
	}
	return c
}

func asciiLower(s string) string {
	for i := 0; i < len(s); i++ {
		if 'A' <= s[i] && s[i] <= 'Z' {
			return strings.ToLower(s)
		}
	}
	return s
}

// Text kinds for CheckText.
const (
	// TextLine is a one-line field: no control character at all.
	TextLine = false
	// TextMultiline is a field that may hold newlines and tabs (private_note).
	TextMultiline = true
)

// CheckText returns a 400 error naming field when s is not valid UTF-8 or
// holds a character a reader cannot see as it is: a control character
// (except newline and tab when multiline), a format character (zero-width
// joiners and spaces, bidi controls and isolates, the byte order mark), a
// line or paragraph separator, a surrogate, a noncharacter or an unassigned
// code point.
func CheckText(field, s string, multiline bool) error {
	if !utf8.ValidString(s) {
		return fieldErr(field, "is not valid UTF-8")
	}
	for _, r := range s {
		if multiline && (r == '\n' || r == '\t') {
			continue
		}
		if bad := badRune(r); bad != "" {
			return fieldErr(field, "must not contain %s (U+%04X)", bad, r)
		}
	}
	return nil
}

// badRune names the class of r when text may not hold it, else "".
func badRune(r rune) string {
	switch {
	case r < 0x20 || (r >= 0x7f && r < 0xa0):
		return "a control character"
	case r < 0x7f:
		return ""
	case unicode.Is(unicode.Cf, r):
		return "an invisible format character"
	case unicode.Is(unicode.Zl, r) || unicode.Is(unicode.Zp, r):
		return "a line or paragraph separator"
	case unicode.Is(unicode.Cs, r) || isNoncharacter(r):
		return "a noncharacter"
	case !assigned(r):
		return "an unassigned character"
	}
	return ""
}

// invisible reports whether r is a character with no glyph of its own that
// is not a format character (variation selectors, the combining grapheme
// joiner, Hangul fillers, Mongolian free variation selectors): harmless in
// prose, but in a name it makes two names look alike.
func invisible(r rune) bool {
	switch {
	case r == 0x034f, r == 0x115f, r == 0x1160, r == 0x17b4, r == 0x17b5, r == 0x3164, r == 0xffa0:
		return true
	case r >= 0x180b && r <= 0x180f, r >= 0xfe00 && r <= 0xfe0f, r >= 0xe0100 && r <= 0xe01ef:
		return true
	}
	return false
}

func isNoncharacter(r rune) bool {
	return (r >= 0xfdd0 && r <= 0xfdef) || r&0xfffe == 0xfffe
}

// assigned reports whether r has a general category in Go's Unicode tables
// (unicode.C is no help: it holds the unassigned code points too).
func assigned(r rune) bool {
	return unicode.In(r, unicode.L, unicode.M, unicode.N, unicode.P, unicode.S, unicode.Z, unicode.Cc, unicode.Cf, unicode.Co, unicode.Cs)
}

// checkName checks a name field (a username or a team name): text as
// CheckText says, and a canonical form of at most maxCanonical bytes (NFKC
// can grow a character into many).
func checkName(field, s string) (canon string, err error) {
	if err := CheckText(field, s, TextLine); err != nil {
		return "", err
	}
	for _, r := range s {
		if invisible(r) {
			return "", fieldErr(field, "must not contain an invisible character (U+%04X)", r)
		}
	}
	canon = CanonicalName(s)
	if len(canon) > maxCanonical {
		return "", fieldErr(field, "is too long once normalized")
	}
	return canon, nil
}

// maxCanonical bounds the canonical form of a name, in bytes.
const maxCanonical = 256
