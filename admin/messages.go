package admin

import (
	"net/http"
	"net/url"
	"time"

	"github.com/apiusers/apiusers/authz"
)

// messageQueryOf reads the message list filters: user (a user id), since
// (inclusive) and until (exclusive), both RFC 3339 times. A time in another
// format, or an until before since, is a 400.
func messageQueryOf(q url.Values) (authz.MessageQuery, error) {
	var mq authz.MessageQuery
	var err error
	if mq.UserID, err = queryParam(q, "user"); err != nil {
		return mq, err
	}
	if mq.Since, err = timeParam(q, "since"); err != nil {
		return mq, err
	}
	if mq.Until, err = timeParam(q, "until"); err != nil {
		return mq, err
	}
	if !mq.Since.IsZero() && !mq.Until.IsZero() && mq.Until.Before(mq.Since) {
		return mq, badRequest("until", "until: must not be before since")
	}
	return mq, nil
}

// timeParam reads query parameter name as an RFC 3339 time; absent is the
// zero time.
func timeParam(q url.Values, name string) (time.Time, error) {
	s, err := queryParam(q, name)
	if err != nil || s == "" {
		return time.Time{}, err
	}
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		return time.Time{}, badRequest(name, name+`: must be an RFC 3339 time such as "2025-01-31T12:00:00Z"`)
	}
	return t, nil
}

// listMessages answers GET /workspaces/{ws}/messages: API messages, newest
// first. A caller without messages.read gets only its own, whatever user
// it asks for (the service enforces it).
func (h *Handler) listMessages(w http.ResponseWriter, r *http.Request, caller *authz.Principal) error {
	q := r.URL.Query()
	mq, err := messageQueryOf(q)
	if err != nil {
		return err
	}
	page, err := pageOf(q)
	if err != nil {
		return err
	}
	items, next, err := h.svc.ListMessages(r.Context(), caller, r.PathValue("ws"), mq, page)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, newList(items, next), "")
}
