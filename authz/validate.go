package authz

import (
	"regexp"
	"strings"
	"time"

	"golang.org/x/text/language"
)

// The rules of well-formed input: ids, names, profile fields, permissions
// and grants. Each returns a field error (400) naming what is wrong.

var (
	workspaceIDRe  = regexp.MustCompile(`^[a-z0-9][a-z0-9-]{0,62}$`)
	permissionRe   = regexp.MustCompile(`^[a-z][a-z0-9_.:-]{0,127}$`)
	resourceTypeRe = regexp.MustCompile(`^[a-z][a-z0-9_-]{0,63}$`)
	rightRe        = permissionRe
	emailRe        = regexp.MustCompile(`^[^@\s]{1,64}@[^@\s]{1,255}$`)
)

// ValidWorkspaceID reports whether id is a well-formed workspace id.
func ValidWorkspaceID(id string) bool { return workspaceIDRe.MatchString(id) }

// ValidPermission reports whether p is a well-formed permission string.
func ValidPermission(p string) bool { return permissionRe.MatchString(p) }

func validateWorkspace(w *Workspace) error {
	if !ValidWorkspaceID(w.ID) {
		return fieldErr("id", "must match ^[a-z0-9][a-z0-9-]{0,62}$")
	}
	if len(w.Name) > 200 {
		return fieldErr("name", "at most 200 characters")
	}
	if w.Name == "" {
		w.Name = w.ID
	}
	return nil
}

func validateUsername(name string) error {
	n := len([]rune(name))
	if n < 1 || n > 64 {
		return fieldErr("username", "must be 1 to 64 characters")
	}
	if strings.HasPrefix(strings.ToLower(name), "usr_") {
		return fieldErr("username", "must not start with usr_")
	}
	for _, r := range name {
		if r <= ' ' || r == 0x7f || r == '/' {
			return fieldErr("username", "must not contain spaces, control characters or '/'")
		}
	}
	return nil
}

func validateEmail(email string) error {
	if email != "" && (!emailRe.MatchString(email) || len(email) > 254) {
		return fieldErr("email", "is not an email address")
	}
	return nil
}

func validateLanguage(tag string) error {
	if tag == "" {
		return nil
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
	for _, r := range id {
		if r <= ' ' || r == 0x7f {
			return "", "", false
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

func validStatus(s Status) bool {
	return s == StatusActive || s == StatusInactive || s == StatusTrash
}
