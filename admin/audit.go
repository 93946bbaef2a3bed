package admin

import (
	"net/http"

	"github.com/apiusers/apiusers/authz"
)

// auditFilterOf reads the audit log filters: action (an action, or a
// prefix ending in "."), actor and target (ids), since (inclusive) and
// until (exclusive), RFC 3339 times.
func auditFilterOf(r *http.Request) (authz.AuditFilter, error) {
	q := r.URL.Query()
	var f authz.AuditFilter
	var err error
	for _, p := range []struct {
		name string
		dst  *string
		max  int
	}{{"action", &f.Action, 128}, {"actor", &f.Actor, 256}, {"target", &f.Target, 512}} {
		if *p.dst, err = queryParam(q, p.name); err != nil {
			return f, err
		}
		if len(*p.dst) > p.max {
			return f, badRequest(p.name, p.name+": too long")
		}
	}
	if f.Since, err = timeParam(q, "since"); err != nil {
		return f, err
	}
	if f.Until, err = timeParam(q, "until"); err != nil {
		return f, err
	}
	if !f.Since.IsZero() && !f.Until.IsZero() && f.Until.Before(f.Since) {
		return f, badRequest("until", "until: must not be before since")
	}
	return f, nil
}

// listAudit answers GET /workspaces/{ws}/audit (audit.read): the
// workspace's admin changes, newest first, narrowed by the filters. A
// filtered page may hold fewer entries than limit (even none) and still
// have a next_cursor: the reading stopped after a bounded number of
// entries.
func (h *Handler) listAudit(w http.ResponseWriter, r *http.Request, caller *authz.Principal) error {
	f, err := auditFilterOf(r)
	if err != nil {
		return err
	}
	page, err := pageOf(r.URL.Query())
	if err != nil {
		return err
	}
	items, next, err := h.svc.ListAuditFiltered(r.Context(), caller, r.PathValue("ws"), f, page)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, newList(items, next), "")
}
