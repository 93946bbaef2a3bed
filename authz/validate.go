package authz

import (
	"regexp"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"golang.org/x/text/language"
)

// The rules of well-formed input: ids, names, profile fields, permissions
// and grants. Each returns a field error (400) naming what is wrong.

var (
	permissionRe   = regexp.MustCompile(`^[a-z][a-z0-9_.:-]{0,127}$`)
	resourceTypeRe = regexp.MustCompile(`^[a-z][a-z0-9_-]{0,63}$`)
	rightRe        = permissionRe
	emailRe        = regexp.MustCompile(`^[^@\s]{1,64}@[^@\s]{1,255}$`)
)

// ValidWorkspaceID reports whether id is a well-formed workspace id.
// It is ^[a-z0-9][a-z0-9-]{0,62}$, checked by hand: every key verification
// asks.
func ValidWorkspaceID(id string) bool {
	if len(id) == 0 || len(id) > 63 || id[0] == '-' {
		return false
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if !('a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-') {
			return false
		}
	}
	return true
}

// ValidPermission reports whether p is a well-formed permission string.
func ValidPermission(p string) bool { return permissionRe.MatchString(p) }

func validateWorkspace(w *Workspace) error {
	if !ValidWorkspaceID(w.ID) {
		return fieldErr("id", "must match ^[a-z0-9][a-z0-9-]{0,62}$")
	}
	if len(w.Name) > 200 {
		return fieldErr("name", "at most 200 characters")
	}
	if err := CheckText("name", w.Name, TextLine); err != nil {
		return err
	}
	if w.Name == "" {
		w.Name = w.ID
	}
	return nil
}

// validateUsername checks a username: 1 to 64 characters, no control,
// format, unassigned or invisible character, no space or '/' and no usr_
// prefix, all of these judged on the name as given and on its canonical
// form (NFKC turns a fullwidth "ＵＳＲ＿" into "USR_" and some characters
// into a space).
func validateUsername(name string) error {
	n := utf8.RuneCountInString(name)
	if n < 1 || n > 64 {
		return fieldErr("username", "must be 1 to 64 characters")
	}
	canon, err := checkName("username", name)
	if err != nil {
		return err
	}
	if strings.HasPrefix(canon, "usr_") {
		return fieldErr("username", "must not start with usr_")
	}
	for _, s := range []string{name, canon} {
		for _, r := range s {
			if r <= ' ' || r == '/' || unicode.IsSpace(r) {
				return fieldErr("username", "must not contain spaces or '/'")
			}
		}
	}
	return nil
}

func validateEmail(email string) error {
	if email == "" {
		return nil
	}
	if len(email) > maxEmailBytes {
		return fieldErr("email", "is not an email address")
	}
	if err := CheckText("email", email, TextLine); err != nil {
		return err
	}
	if !emailRe.MatchString(email) {
		return fieldErr("email", "is not an email address")
	}
	if _, err := checkName("email", email); err != nil {
		return err
	}
	return nil
}

func validateLanguage(tag string) error {
	if tag == "" {
		return nil
	}
	if err := CheckText("language", tag, TextLine); err != nil {
		return err
	}
	if _, err := language.Parse(tag); err != nil {
		return fieldErr("language", "is not a BCP 47 language tag")
	}
	return nil
}

func validateTimezone(tz string) error {
	if tz == "" {
		return nil
	}
	if err := CheckText("timezone", tz, TextLine); err != nil {
		return err
	}
	if tz == "Local" || strings.HasPrefix(tz, "/") {
		return fieldErr("timezone", "is not an IANA time zone name")
	}
	if _, err := time.LoadLocation(tz); err != nil {
		return fieldErr("timezone", "is not an IANA time zone name")
	}
	return nil
}

func validatePermissions(field string, perms []string) error {
	for _, p := range perms {
		if !ValidPermission(p) {
			return fieldErr(field, "%q is not a valid permission", p)
		}
	}
	return nil
}

// ParseResource splits "type:id" and reports whether it is well formed.
func ParseResource(res string) (typ, id string, ok bool) {
	typ, id, ok = strings.Cut(res, ":")
	if !ok || !resourceTypeRe.MatchString(typ) || id == "" || len(id) > 200 {
		return "", "", false
	}
	for i := 0; i < len(id); i++ {
		if c := id[i]; c <= ' ' || c == 0x7f {
			return "", "", false
		}
		if id[i] >= utf8.RuneSelf {
			// Not ASCII: refuse what CheckText refuses, and spaces.
			for _, r := range id[i:] {
				if badRune(r) != "" || unicode.IsSpace(r) || r == utf8.RuneError {
					return "", "", false
				}
			}
			break
		}
	}
	return typ, id, true
}

func validateGrants(field string, grants []Grant) error {
	seen := make(map[string]bool, len(grants))
	for _, g := range grants {
		if _, _, ok := ParseResource(g.Resource); !ok {
			return fieldErr(field, "resource %q is not of the form type:id", g.Resource)
		}
		if seen[g.Resource] {
			return fieldErr(field, "resource %q is listed twice", g.Resource)
		}
		seen[g.Resource] = true
		if len(g.Rights) == 0 {
			return fieldErr(field, "resource %q has no rights", g.Resource)
		}
		for _, r := range g.Rights {
			if !rightRe.MatchString(r) {
				return fieldErr(field, "right %q is not valid", r)
			}
		}
	}
	return nil
}

// ValidStatus reports whether s is a status a user may be given: active,
// inactive or trash (invited is only the invitation's to give).
func ValidStatus(s Status) bool {
	return s == StatusActive || s == StatusInactive || s == StatusTrash
}

// The longest organization and private note, in bytes.
const (
	maxOrganization = 200
	maxPrivateNote  = 4000
)

func validateOrganization(org string) error {
	if len(org) > maxOrganization {
		return fieldErr("organization", "at most %d characters", maxOrganization)
	}
	return CheckText("organization", org, TextLine)
}

// validatePrivateNote: a note may hold newlines and tabs.
func validatePrivateNote(note string) error {
	if len(note) > maxPrivateNote {
		return fieldErr("private_note", "at most %d characters", maxPrivateNote)
	}
	return CheckText("private_note", note, TextMultiline)
}
