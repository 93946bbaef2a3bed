// Package mail composes and sends the mails of apiusers: invitations and
// password resets, each a multipart/alternative of plain text and HTML in
// the recipient's language (German for "de…", English otherwise).
//
// A Mailer sends them through one SMTP server, off the caller's path: Send
// queues and returns at once, a few workers deliver with retries and
// backoff, and what cannot be sent is logged (the recipient's domain, never
// the link) and counted. The package knows nothing of Caddy or HTTP; the
// module builds a Mailer from its `mail` option and hands it to the admin
// handlers as a Sender.
package mail

import "time"

// Kind says which mail a Message is.
type Kind string

// The kinds of mail.
const (
	// KindInvitation invites a person into a workspace; its Link accepts
	// the invitation.
	KindInvitation Kind = "invitation"
	// KindPasswordReset lets a person set a new password; its Link does.
	KindPasswordReset Kind = "password_reset"
)

// Message is one mail to send. Every field but the link is shown to the
// recipient as text: control characters are replaced by spaces and HTML
// is escaped. The link is the only secret a mail carries.
type Message struct {
	Kind      Kind
	To        string    // recipient address, a bare addr-spec (bob@example.com)
	Language  string    // BCP 47; German for "de…", else English
	Name      string    // recipient's name if known, for the greeting and the To header
	Workspace string    // workspace name (invitations)
	Inviter   string    // inviter's name or username (invitations)
	Link      string    // the one-time link (http or https)
	Expires   time.Time // when the link stops working; shown in UTC; zero: not shown
}

// Sender sends mails. Send queues the message and returns at once, never
// blocking the request that caused it; delivery is retried, and a message
// that cannot be delivered (or queued) is logged and counted as failed.
type Sender interface {
	Send(Message)
}
