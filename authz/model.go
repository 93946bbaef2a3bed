package authz

import (
	"regexp"
	"strings"
	"time"

	"golang.org/x/text/language"
)

// Workspace is a tenant. Users, teams, grants, messages and the audit log live
// inside exactly one workspace.
type Workspace struct {
	ID        string    `json:"id"`
	Name      string    `json:"name"`
	CreatedAt time.Time `json:"created_at"`
}

// Kind tells API users (keys only) from members (people).
type Kind string

const (
	KindAPI    Kind = "api"
	KindMember Kind = "member"
)

// Status is a user's lifecycle state.
type Status string

const (
	StatusActive   Status = "active"
	StatusInactive Status = "inactive"
	StatusTrash    Status = "trash"
)

// Grant gives rights on one resource ("type:id") or on every resource of a
// type ("type:*").
type Grant struct {
	Resource string   `json:"resource"`
	Rights   []string `json:"rights"`
}

// User is an account in one workspace.
type User struct {
	ID           string    `json:"id"`
	Workspace    string    `json:"workspace"`
	Username     string    `json:"username"`
	Email        string    `json:"email,omitempty"`
	Kind         Kind      `json:"kind"`
	Role         Role      `json:"role"`
	Status       Status    `json:"status"`
	Organization string    `json:"organization,omitempty"`
	Language     string    `json:"language,omitempty"`
	Timezone     string    `json:"timezone,omitempty"`
	PrivateNote  string    `json:"private_note,omitempty"`
	Permissions  []string  `json:"permissions"`
	Grants       []Grant   `json:"grants"`
	Teams        []string  `json:"teams"`
	CreatedAt    time.Time `json:"created_at"`
	UpdatedAt    time.Time `json:"updated_at"`
	Version      int64     `json:"version"`
}

// Team groups users; its permissions and grants reach every member.
type Team struct {
	ID          string    `json:"id"`
	Workspace   string    `json:"workspace"`
	Name        string    `json:"name"`
	Permissions []string  `json:"permissions"`
	Grants      []Grant   `json:"grants"`
	Members     []string  `json:"members"`
	CreatedAt   time.Time `json:"created_at"`
	UpdatedAt   time.Time `json:"updated_at"`
	Version     int64     `json:"version"`
}

// Key is the stored metadata of an API key. The key itself (the signed JWT)
// is never stored; IssuedAt and ExpiresAt are kept so Reveal can re-sign the
// very same claims.
type Key struct {
	ID         string     `json:"id"`
	UserID     string     `json:"user_id"`
	Workspace  string     `json:"workspace"`
	Name       string     `json:"name"`
	CreatedAt  time.Time  `json:"created_at"`
	LastUsedAt *time.Time `json:"last_used_at,omitempty"`
	ExpiresAt  *time.Time `json:"expires_at,omitempty"`
	// RevokesAt is set when the key was regenerated with a grace period: the
	// key stops working at that instant.
	RevokesAt *time.Time `json:"revokes_at,omitempty"`
	// IssuedAt is the key's iat claim (Unix seconds).
	IssuedAt int64 `json:"issued_at"`
	// SigningKeyID is the kid the key was signed with.
	SigningKeyID string `json:"signing_key_id"`
}

// Live reports whether the key may authenticate at t.
func (k *Key) Live(t time.Time) bool {
	if k.RevokesAt != nil && !t.Before(*k.RevokesAt) {
		return false
	}
	if k.ExpiresAt != nil && !t.Before(*k.ExpiresAt) {
		return false
	}
	return true
}

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
