package authz

import (
	"time"
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
	// StatusInvited is a membership (a member user) made by an invitation
	// and not accepted yet: it cannot be used.
	StatusInvited Status = "invited"
)

// Grant gives rights on one resource ("type:id") or on every resource of a
// type ("type:*").
type Grant struct {
	Resource string   `json:"resource"`
	Rights   []string `json:"rights"`
}

// User is an account in one workspace.
type User struct {
	ID           string   `json:"id"`
	Workspace    string   `json:"workspace"`
	Username     string   `json:"username"`
	Email        string   `json:"email,omitempty"`
	Kind         Kind     `json:"kind"`
	Role         Role     `json:"role"`
	Status       Status   `json:"status"`
	Organization string   `json:"organization,omitempty"`
	Language     string   `json:"language,omitempty"`
	Timezone     string   `json:"timezone,omitempty"`
	PrivateNote  string   `json:"private_note,omitempty"`
	Permissions  []string `json:"permissions"`
	Grants       []Grant  `json:"grants"`
	Teams        []string `json:"teams"`
	// Account names the person (acc_…) of a member user: the user is that
	// person's membership of the workspace. Empty for API users.
	Account string `json:"account,omitempty"`
	// PasswordChangedAt is when an API user's password was last set; nil
	// when it has none. (A person's password is the account's.)
	PasswordChangedAt *time.Time `json:"password_changed_at,omitempty"`
	// HasPassword tells whether an API user may sign in with a password.
	HasPassword bool `json:"has_password,omitempty"`
	// RateLimit is the user's own rate limit, replacing a route's (see
	// RateLimit); nil when it has none.
	RateLimit *RateLimit `json:"rate_limit,omitempty"`
	// Credits are the user's quota; nil when it has none (unlimited).
	Credits *Credits `json:"credits,omitempty"`
	// AcceptedAt is when the person accepted the invitation of this
	// membership; nil for one never accepted, which cannot become active
	// but by accepting (restored from trash, it is invited again) and
	// gets no password reset.
	AcceptedAt *time.Time `json:"accepted_at,omitempty"`
	CreatedAt  time.Time  `json:"created_at"`
	UpdatedAt  time.Time  `json:"updated_at"`
	Version    int64      `json:"version"`
}

// Team groups users; its permissions and grants reach every member.
type Team struct {
	ID          string   `json:"id"`
	Workspace   string   `json:"workspace"`
	Name        string   `json:"name"`
	Permissions []string `json:"permissions"`
	Grants      []Grant  `json:"grants"`
	// Members are the team's members, in user id order. They are not part
	// of the team's stored record but records of their own
	// (CollTeamMembers), so that a team of a million devices costs a
	// member's principal no more than a team of one.
	Members []string `json:"members"`
	// RateLimit is the team's rate limit: its members' own, unless their
	// key or user has one (the highest of a user's teams' counts).
	RateLimit *RateLimit `json:"rate_limit,omitempty"`
	CreatedAt time.Time  `json:"created_at"`
	UpdatedAt time.Time  `json:"updated_at"`
	Version   int64      `json:"version"`

	// inRecord are the members the stored record itself lists: a record
	// written before CollTeamMembers existed. putTeam moves them there.
	inRecord []string
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
	// RateLimit is the key's own rate limit, replacing its user's and a
	// route's; nil when it has none.
	RateLimit *RateLimit `json:"rate_limit,omitempty"`
	// Credits are the key's quota, spent before (instead of) its user's;
	// nil when it has none.
	Credits *Credits `json:"credits,omitempty"`
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
