package authz

import "time"

// Page selects one page of a list.
type Page struct {
	// Limit is the page size: default 50, at most 500.
	Limit int
	// Cursor is the opaque next_cursor of the previous page ("" for the first).
	Cursor string
}

// Page sizes.
const (
	DefaultPageSize = 50
	MaxPageSize     = 500
)

// UserFilter narrows a user list. Empty fields match everything.
type UserFilter struct {
	Kind   Kind
	Role   Role
	Status Status
	Team   string
	// Q matches a case-insensitive prefix of the username or the email.
	Q string
}

// check rejects a filter on a kind, role or status that does not exist
// (400, before anything else is looked at).
func (f *UserFilter) check() error {
	switch {
	case f.Kind != "" && f.Kind != KindAPI && f.Kind != KindMember:
		return fieldErr("kind", "must be api or member")
	case f.Role != "" && !ValidRole(f.Role):
		return fieldErr("role", "unknown role %q", f.Role)
	case f.Status != "" && !ValidStatus(f.Status) && f.Status != StatusInvited:
		return fieldErr("status", "must be invited, active, inactive or trash")
	}
	return nil
}

// NewUser is the body of a user creation.
type NewUser struct {
	Username     string   `json:"username"`
	Kind         Kind     `json:"kind"`
	Role         Role     `json:"role"`
	Status       Status   `json:"status,omitempty"`
	Email        string   `json:"email,omitempty"`
	Organization string   `json:"organization,omitempty"`
	Language     string   `json:"language,omitempty"`
	Timezone     string   `json:"timezone,omitempty"`
	PrivateNote  string   `json:"private_note,omitempty"`
	Permissions  []string `json:"permissions,omitempty"`
	Grants       []Grant  `json:"grants,omitempty"`
	Teams        []string `json:"teams,omitempty"`
	// IssueKey asks for the user's first key in the same step; it is
	// returned once, in the response.
	IssueKey bool `json:"issue_key,omitempty"`
	// Password, for an API user, lets it sign in with POST /login; it is
	// hashed and never stored, returned or audited.
	Password string `json:"password,omitempty"`
	// RateLimit and Credits are the user's own rate limit and credits
	// (see RateLimit, Credits); the caller must be allowed to set them.
	RateLimit *RateLimit  `json:"rate_limit,omitempty"`
	Credits   *SetCredits `json:"credits,omitempty"`
}

// UserPatch is the body of a user update; nil fields stay as they are
// (RateLimit and Credits: left out stay, null removes them).
type UserPatch struct {
	Username     *string   `json:"username,omitempty"`
	Email        *string   `json:"email,omitempty"`
	Role         *Role     `json:"role,omitempty"`
	Organization *string   `json:"organization,omitempty"`
	Language     *string   `json:"language,omitempty"`
	Timezone     *string   `json:"timezone,omitempty"`
	PrivateNote  *string   `json:"private_note,omitempty"`
	Permissions  *[]string `json:"permissions,omitempty"`
	Grants       *[]Grant  `json:"grants,omitempty"`

	RateLimit Optional[RateLimit]  `json:"rate_limit"`
	Credits   Optional[SetCredits] `json:"credits"`
}

// SelfPatch is the body of PATCH /me: the fields every user may change on
// itself.
type SelfPatch struct {
	Email    *string `json:"email,omitempty"`
	Language *string `json:"language,omitempty"`
	Timezone *string `json:"timezone,omitempty"`
}

// NewKey is the body of a key creation.
type NewKey struct {
	Name      string      `json:"name"`
	ExpiresAt *time.Time  `json:"expires_at,omitempty"`
	RateLimit *RateLimit  `json:"rate_limit,omitempty"`
	Credits   *SetCredits `json:"credits,omitempty"`
}

// KeyPatch is the body of a key update: its own rate limit and credits.
// A field left out stays as it is; null removes it.
type KeyPatch struct {
	RateLimit Optional[RateLimit]  `json:"rate_limit"`
	Credits   Optional[SetCredits] `json:"credits"`
}

// IssuedKey is a key's metadata with the key itself, as create, regenerate
// and reveal return it (and only they).
type IssuedKey struct {
	Key
	Secret string `json:"key"`
}

// CreatedUser is a created user with its first key when one was asked for
// (issue_key): the key itself in Key, its id in KeyID.
type CreatedUser struct {
	User
	Key   string `json:"key,omitempty"`
	KeyID string `json:"key_id,omitempty"`
}

// Me is what GET /me returns: the caller and its effective rights.
type Me struct {
	User User `json:"user"`
	// Permissions are the effective permissions; "*" means every permission
	// except those in Except.
	Permissions []string `json:"permissions"`
	Except      []string `json:"except,omitempty"`
	Grants      []Grant  `json:"grants"`
}

// NewTeam is the body of a team creation.
type NewTeam struct {
	Name        string     `json:"name"`
	Permissions []string   `json:"permissions,omitempty"`
	Grants      []Grant    `json:"grants,omitempty"`
	RateLimit   *RateLimit `json:"rate_limit,omitempty"`
}

// TeamPatch is the body of a team update; nil fields stay as they are
// (RateLimit: left out stays, null removes it).
type TeamPatch struct {
	Name        *string             `json:"name,omitempty"`
	Permissions *[]string           `json:"permissions,omitempty"`
	Grants      *[]Grant            `json:"grants,omitempty"`
	RateLimit   Optional[RateLimit] `json:"rate_limit"`
}
