package authz

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/apiusers/apiusers/authz/ids"
)

// Message is one recorded call of an API user (an "API message").
type Message struct {
	ID         string    `json:"id"`
	Workspace  string    `json:"workspace"`
	UserID     string    `json:"user_id"`
	KeyID      string    `json:"key_id"`
	Time       time.Time `json:"time"`
	Method     string    `json:"method"`
	Path       string    `json:"path"`
	Status     int       `json:"status"`
	DurationMS float64   `json:"duration_ms"`
	BytesIn    int64     `json:"bytes_in"`
	BytesOut   int64     `json:"bytes_out"`
	ClientIP   string    `json:"client_ip"`
	// Body is the start of the request body, when the route records bodies.
	Body string `json:"body,omitempty"`
	// BodyTruncated is true when the body was longer than what was kept.
	BodyTruncated bool `json:"body_truncated,omitempty"`
}

// MessageQuery selects messages of one workspace, newest first.
type MessageQuery struct {
	// UserID restricts to one user's messages ("" = every user).
	UserID string
	// Since and Until bound the message time (zero = unbounded); Since is
	// inclusive, Until exclusive.
	Since, Until time.Time
	// After is the id of the last message of the previous page.
	After string
	Limit int
}

// Retention bounds what is kept of each user's messages.
type Retention struct {
	// MaxPerUser keeps at most this many messages per user (0 = no bound).
	MaxPerUser int
	// MaxAge drops messages older than this (0 = no bound).
	MaxAge time.Duration
}

// MessageStore keeps API messages. Both stores implement it; it is apart
// from Store because messages are written in bulk, off the request path,
// and need no transactions with the rest.
type MessageStore interface {
	// AppendMessages stores msgs (ids already set, newest-first ids from
	// NewMessageID) and applies retention to the users they belong to.
	AppendMessages(ctx context.Context, msgs []Message, keep Retention) error
	// ListMessages returns up to q.Limit messages, newest first, costing
	// O(page) when q.UserID is set.
	ListMessages(ctx context.Context, ws string, q MessageQuery) ([]Message, error)
	// EraseMessages deletes every message of user userID.
	EraseMessages(ctx context.Context, ws, userID string) error
}

// NewMessageID makes a message id that sorts newest first.
func NewMessageID(t time.Time) string { return ids.NewestFirst(messageIDPrefix, t) }

// ListMessages lists a workspace's messages, newest first. A caller without
// messages.read sees only its own, whatever user it asks for.
func (s *Service) ListMessages(ctx context.Context, actor *Principal, ws string, q MessageQuery, page Page) ([]Message, string, error) {
	ms, ok := s.store.(MessageStore)
	if !ok {
		return nil, "", errf(ErrUnavailable, "this store does not keep messages")
	}
	if !actor.InWorkspace(ws) {
		return nil, "", forbidden("not a member of workspace %s", ws)
	}
	if !actor.HasPermission(PermMessagesRead) {
		if !actor.HasPermission(PermMessagesRead + OwnSuffix) {
			return nil, "", forbidden("reading messages needs %s", PermMessagesRead)
		}
		q.UserID = actor.UserID
	}
	list := "messages:" + ws
	page, after, err := s.normalize(page, list)
	if err != nil {
		return nil, "", err
	}
	if _, err := s.workspaceExists(ctx, ws); err != nil {
		return nil, "", err
	}
	q.After, q.Limit = after, page.Limit+1
	out, err := ms.ListMessages(ctx, ws, q)
	if err != nil {
		return nil, "", err
	}
	out, next := cutPage(s, list, out, page.Limit, func(m *Message) string { return m.ID })
	return out, next, nil
}

// MessageSweeper is a MessageStore that can apply an age bound to every
// user at once, so that the messages of a user who stopped calling age out
// too (AppendMessages applies retention only to the users it writes for).
type MessageSweeper interface {
	// SweepMessages deletes messages older than before (at millisecond
	// precision) of every user of every workspace, at most limit of them
	// (limit > 0), and returns how many it deleted. Each deletion removes
	// a message from every index at once.
	SweepMessages(ctx context.Context, before time.Time, limit int) (int, error)
}

// Message ids and time windows. Ids sort newest first (NewMessageID), so a
// time window is an id range and a store lists a window in O(page).

const messageIDPrefix = "msg_"

// messageTimePrefix is the part of a message id that encodes t's millisecond.
func messageTimePrefix(t time.Time) string {
	return NewMessageID(t)[:len(messageIDPrefix)+ids.NewestFirstTimeLen]
}

// successor returns the smallest string greater than every string starting
// with prefix (whose last byte is below 0xff, as in ids).
func successor(prefix string) string {
	b := []byte(prefix)
	b[len(b)-1]++
	return string(b)
}

// IDRange turns q into the message ids it may list: from (inclusive) to to
// (exclusive). Until (exclusive, the newest time allowed) sets the start
// and Since (inclusive, the oldest) the end; both are exact to the
// millisecond, and Contains decides within the bounds' own milliseconds.
// After moves the start past the previous page's last id.
func (q MessageQuery) IDRange() (from, to string) {
	from, to = messageIDPrefix, successor(messageIDPrefix)
	if !q.Until.IsZero() {
		from = messageTimePrefix(q.Until.Add(-time.Nanosecond))
	}
	if q.After != "" && q.After >= from {
		from = q.After + "\x00" // the smallest id after q.After
	}
	if !q.Since.IsZero() {
		to = successor(messageTimePrefix(q.Since))
	}
	return from, to
}

// Contains reports whether m's time is within q's Since and Until.
func (q MessageQuery) Contains(m *Message) bool {
	return (q.Since.IsZero() || !m.Time.Before(q.Since)) && (q.Until.IsZero() || m.Time.Before(q.Until))
}

// MessageIDsOlderThan returns the first id of the messages made before
// cutoff's millisecond: every id from it on is older than cutoff.
func MessageIDsOlderThan(cutoff time.Time) string { return successor(messageTimePrefix(cutoff)) }

// Validate rejects a message a store could not index.
func (m *Message) Validate() error {
	if m.Workspace != "" && !ValidWorkspaceID(m.Workspace) {
		return fmt.Errorf("message %s: workspace id %q: %w", m.ID, m.Workspace, ErrInvalid)
	}
	if m.UserID == "" {
		return fmt.Errorf("message %s: empty user id: %w", m.ID, ErrInvalid)
	}
	if !strings.HasPrefix(m.ID, messageIDPrefix) || len(m.ID) < len(messageIDPrefix)+ids.NewestFirstTimeLen {
		return fmt.Errorf("message id %q was not made by authz.NewMessageID: %w", m.ID, ErrInvalid)
	}
	return nil
}
