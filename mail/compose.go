package mail

import (
	"bytes"
	"crypto/rand"
	"embed"
	"encoding/hex"
	"errors"
	"fmt"
	htmltemplate "html/template"
	"mime"
	"mime/multipart"
	"mime/quotedprintable"
	netmail "net/mail"
	"net/textproto"
	"strings"
	texttemplate "text/template"
	"time"
	"unicode"
	"unicode/utf8"
)

//go:embed templates
var templateFS embed.FS

// maxField bounds, in runes, each text field a message shows, so that a
// long name keeps the subject header well inside SMTP's line limit.
const maxField = 200

// A locale is one kind of mail in one language: its subject and plain text
// (text/template) and its HTML (html/template, escaped in context).
type locale struct {
	lang string // the Content-Language and <html lang>
	text *texttemplate.Template
	html *htmltemplate.Template
}

// locales holds every kind in every language, parsed once.
var locales = mustLocales()

func mustLocales() map[Kind]map[string]*locale {
	layout := htmltemplate.Must(htmltemplate.ParseFS(templateFS, "templates/layout.html"))
	out := make(map[Kind]map[string]*locale)
	for _, kind := range []Kind{KindInvitation, KindPasswordReset} {
		out[kind] = make(map[string]*locale)
		for _, lang := range []string{"en", "de"} {
			name := string(kind) + "." + lang
			h := htmltemplate.Must(htmltemplate.Must(layout.Clone()).ParseFS(templateFS, "templates/"+name+".html"))
			t := texttemplate.Must(texttemplate.New(name).Option("missingkey=error").ParseFS(templateFS, "templates/"+name+".txt"))
			out[kind][lang] = &locale{lang: lang, text: t, html: h}
		}
	}
	return out
}

// language picks the language of a BCP 47 tag: German for "de" and its
// regional variants, English for everything else.
func language(tag string) string {
	tag = strings.ToLower(strings.TrimSpace(tag))
	if tag == "de" || strings.HasPrefix(tag, "de-") || strings.HasPrefix(tag, "de_") {
		return "de"
	}
	return "en"
}

// view is what the templates see: every field cleaned for display.
type view struct {
	Lang      string
	Subject   string
	Name      string
	Workspace string
	Inviter   string
	Link      string
	Expires   string // formatted in the mail's language, UTC; empty: none
}

// clean makes s safe to show on one line: control characters (CR and LF
// included) and bidirectional overrides become spaces, runs of space
// collapse, and the result is cut to maxField runes.
func clean(s string) string {
	var b strings.Builder
	space := false
	n := 0
	for _, r := range s {
		if r == utf8.RuneError || unicode.IsControl(r) || unicode.IsSpace(r) ||
			(r >= 0x202A && r <= 0x202E) || (r >= 0x2066 && r <= 0x2069) {
			space = b.Len() > 0
			continue
		}
		if n == maxField {
			b.WriteRune('…')
			break
		}
		if space {
			b.WriteByte(' ')
			n++
			space = false
		}
		b.WriteRune(r)
		n++
	}
	return b.String()
}

var (
	monthsDE = [...]string{"Januar", "Februar", "März", "April", "Mai", "Juni", "Juli", "August", "September", "Oktober", "November", "Dezember"}
	daysDE   = [...]string{"Sonntag", "Montag", "Dienstag", "Mittwoch", "Donnerstag", "Freitag", "Samstag"}
)

// formatExpires writes t in UTC the way the language writes dates.
func formatExpires(t time.Time, lang string) string {
	t = t.UTC()
	if lang == "de" {
		return fmt.Sprintf("%s, %d. %s %d, %02d:%02d UTC", daysDE[t.Weekday()], t.Day(), monthsDE[t.Month()-1], t.Year(), t.Hour(), t.Minute())
	}
	return t.Format("Monday, 2 January 2006, 15:04 UTC")
}

// compose renders m as a complete RFC 5322 message with CRLF line endings:
// headers, then a multipart/alternative body of plain text and HTML, both
// quoted-printable UTF-8. It returns the parsed recipient too.
func compose(m Message, from netmail.Address, now time.Time) ([]byte, string, error) {
	loc := locales[m.Kind][language(m.Language)]
	if loc == nil {
		return nil, "", fmt.Errorf("unknown kind of mail %q", m.Kind)
	}
	to, err := recipient(m.To)
	if err != nil {
		return nil, "", err
	}
	if m.Link == "" {
		return nil, "", errors.New("mail without a link")
	}
	if !strings.HasPrefix(m.Link, "https://") && !strings.HasPrefix(m.Link, "http://") {
		return nil, "", errors.New("the link is neither http nor https")
	}
	if strings.ContainsFunc(m.Link, func(r rune) bool { return r <= ' ' || r == 0x7f }) {
		return nil, "", errors.New("the link contains spaces or control characters")
	}
	v := view{
		Lang:      loc.lang,
		Name:      clean(m.Name),
		Workspace: clean(m.Workspace),
		Inviter:   clean(m.Inviter),
		Link:      m.Link,
	}
	if m.Kind == KindInvitation && v.Workspace == "" {
		return nil, "", errors.New("invitation without a workspace name")
	}
	if !m.Expires.IsZero() {
		v.Expires = formatExpires(m.Expires, loc.lang)
	}
	var subject, text, html bytes.Buffer
	if err := loc.text.ExecuteTemplate(&subject, "subject", v); err != nil {
		return nil, "", fmt.Errorf("rendering the subject: %w", err)
	}
	v.Subject = clean(subject.String())
	if err := loc.text.ExecuteTemplate(&text, "body", v); err != nil {
		return nil, "", fmt.Errorf("rendering the text: %w", err)
	}
	if err := loc.html.ExecuteTemplate(&html, "layout", v); err != nil {
		return nil, "", fmt.Errorf("rendering the HTML: %w", err)
	}

	var out bytes.Buffer
	header := func(name, value string) {
		out.WriteString(name)
		out.WriteString(": ")
		out.WriteString(value)
		out.WriteString("\r\n")
	}
	id, err := messageID(from.Address)
	if err != nil {
		return nil, "", err
	}
	rcpt := netmail.Address{Name: v.Name, Address: to}
	body := multipart.NewWriter(&out)
	header("Date", now.Format(time.RFC1123Z))
	header("From", from.String())
	header("To", rcpt.String())
	header("Subject", mime.QEncoding.Encode("utf-8", v.Subject))
	header("Message-ID", id)
	header("MIME-Version", "1.0")
	header("Content-Language", loc.lang)
	header("Auto-Submitted", "auto-generated")
	header("Content-Type", `multipart/alternative; boundary="`+body.Boundary()+`"`)
	out.WriteString("\r\n")
	for _, p := range []struct {
		typ  string
		body []byte
	}{
		{"text/plain; charset=utf-8", text.Bytes()},
		{"text/html; charset=utf-8", html.Bytes()},
	} {
		w, err := body.CreatePart(textproto.MIMEHeader{
			"Content-Type":              {p.typ},
			"Content-Transfer-Encoding": {"quoted-printable"},
		})
		if err != nil {
			return nil, "", err
		}
		// The quoted-printable writer ends every line with CRLF and keeps
		// lines within 76 characters, so long links survive any relay.
		qp := quotedprintable.NewWriter(w)
		if _, err := qp.Write(p.body); err != nil {
			return nil, "", err
		}
		if err := qp.Close(); err != nil {
			return nil, "", err
		}
	}
	if err := body.Close(); err != nil {
		return nil, "", err
	}
	return out.Bytes(), to, nil
}

// recipient checks that to is one bare address on one line.
func recipient(to string) (string, error) {
	if to == "" {
		return "", errors.New("mail without a recipient")
	}
	if strings.ContainsAny(to, "\r\n") {
		return "", errors.New("invalid recipient address")
	}
	a, err := netmail.ParseAddress(to)
	if err != nil || a.Name != "" || a.Address != strings.TrimSpace(to) {
		return "", errors.New("invalid recipient address")
	}
	return a.Address, nil
}

// domain is the part of an address after its last '@', the only part of
// a recipient the logs show.
func domain(addr string) string {
	if i := strings.LastIndexByte(addr, '@'); i >= 0 {
		return strings.ToLower(addr[i+1:])
	}
	return ""
}

// messageID makes a globally unique Message-ID in the sender's domain.
func messageID(from string) (string, error) {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("making a message id: %w", err)
	}
	d := domain(from)
	if d == "" {
		d = "localhost"
	}
	return "<" + hex.EncodeToString(b[:]) + "@" + d + ">", nil
}
