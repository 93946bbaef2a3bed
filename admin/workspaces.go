package admin

import (
	"net/http"

	"github.com/apiusers/apiusers/authz"
)

// newWorkspace is the body of POST /workspaces.
type newWorkspace struct {
	// ID is the workspace id, ^[a-z0-9][a-z0-9-]{0,62}$.
	ID string `json:"id"`
	// Name is a display name. Default: the id.
	Name string `json:"name,omitempty"`
}

// listWorkspaces answers GET /workspaces: the caller's workspace (a
// person's: every workspace it is an active member of), or every
// workspace for a superadmin.
func (h *Handler) listWorkspaces(w http.ResponseWriter, r *http.Request, caller *authz.Principal) error {
	page, err := pageOf(r.URL.Query())
	if err != nil {
		return err
	}
	if c := authOf(r).console; c != nil && !caller.Everywhere {
		// A person: every workspace it is an active member of (one page:
		// a person belongs to a few).
		items, err := h.svc.PersonWorkspaces(r.Context(), c)
		if err != nil {
			return err
		}
		if page.Cursor != "" {
			items = nil
		}
		return writeJSON(w, http.StatusOK, newList(items, ""), "")
	}
	items, next, err := h.svc.ListWorkspaces(r.Context(), caller, page)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, newList(items, next), "")
}

// createWorkspace answers POST /workspaces (workspaces.manage) with 201,
// the workspace and its Location.
func (h *Handler) createWorkspace(w http.ResponseWriter, r *http.Request, caller *authz.Principal) error {
	var in newWorkspace
	if err := decodeBody(w, r, &in, false); err != nil {
		return err
	}
	ws, err := h.svc.CreateWorkspace(r.Context(), caller, authz.Workspace{ID: in.ID, Name: in.Name})
	if err != nil {
		return err
	}
	setLocation(w, r, pathOf("workspaces", ws.ID))
	return writeJSON(w, http.StatusCreated, ws, autoETag)
}

// getWorkspace answers GET /workspaces/{ws}. Workspaces have no version:
// the ETag is derived from the representation.
func (h *Handler) getWorkspace(w http.ResponseWriter, r *http.Request, caller *authz.Principal) error {
	ws, err := h.svc.GetWorkspace(r.Context(), caller, r.PathValue("ws"))
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, ws, autoETag)
}
