package admin

import (
	"net/http"

	"github.com/apiusers/apiusers/authz"
)

// listAudit answers GET /workspaces/{ws}/audit (audit.read): the
// workspace's admin changes, newest first.
func (h *Handler) listAudit(w http.ResponseWriter, r *http.Request, caller *authz.Principal) error {
	page, err := pageOf(r.URL.Query())
	if err != nil {
		return err
	}
	items, next, err := h.svc.ListAudit(r.Context(), caller, r.PathValue("ws"), page)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, newList(items, next), "")
}
