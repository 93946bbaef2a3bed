package admin

import (
	"net/http"

	"github.com/apiusers/apiusers/authz"
)

// membership is the body of PUT /workspaces/{ws}/teams/{tid}/members/{uid}.
// It has no fields: the body may be empty or {}.
type membership struct{}

// teamPath is the path of team tid in ws, relative to the mount.
func teamPath(ws, tid string) string { return pathOf("workspaces", ws, "teams", tid) }

// listTeams answers GET /workspaces/{ws}/teams, in creation order.
func (h *Handler) listTeams(w http.ResponseWriter, r *http.Request, caller *authz.Principal) error {
	page, err := pageOf(r.URL.Query())
	if err != nil {
		return err
	}
	items, next, err := h.svc.ListTeams(r.Context(), caller, r.PathValue("ws"), page)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, newList(items, next), "")
}

// createTeam answers POST /workspaces/{ws}/teams (teams.manage) with 201,
// the team, its ETag and its Location.
func (h *Handler) createTeam(w http.ResponseWriter, r *http.Request, caller *authz.Principal) error {
	var in authz.NewTeam
	if err := decodeBody(w, r, &in, false); err != nil {
		return err
	}
	ws := r.PathValue("ws")
	t, err := h.svc.CreateTeam(r.Context(), caller, ws, in)
	if err != nil {
		return err
	}
	setLocation(w, r, teamPath(ws, t.ID))
	return writeJSON(w, http.StatusCreated, t, etag(t.Version))
}

// getTeam answers GET /workspaces/{ws}/teams/{tid} with the ETag of the
// team's version.
func (h *Handler) getTeam(w http.ResponseWriter, r *http.Request, caller *authz.Principal) error {
	t, err := h.svc.GetTeam(r.Context(), caller, r.PathValue("ws"), r.PathValue("tid"))
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, t, etag(t.Version))
}

// patchTeam answers PATCH /workspaces/{ws}/teams/{tid}. If-Match, when it
// names versions, must name the current one (else 412).
func (h *Handler) patchTeam(w http.ResponseWriter, r *http.Request, caller *authz.Principal) error {
	cond, err := parseIfMatch(r)
	if err != nil {
		return err
	}
	var in authz.TeamPatch
	if err := decodeBody(w, r, &in, false); err != nil {
		return err
	}
	ws, tid := r.PathValue("ws"), r.PathValue("tid")
	var version *int64
	if !cond.any {
		v, err := h.pickVersion(cond, func() (int64, error) {
			t, err := h.svc.GetTeam(r.Context(), caller, ws, tid)
			if err != nil {
				return 0, err
			}
			return t.Version, nil
		})
		if err != nil {
			return err
		}
		version = &v
	}
	t, err := h.svc.UpdateTeam(r.Context(), caller, ws, tid, in, version)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, t, etag(t.Version))
}

// deleteTeam answers DELETE /workspaces/{ws}/teams/{tid} with 204; the
// team's members lose what it gave them at once.
func (h *Handler) deleteTeam(w http.ResponseWriter, r *http.Request, caller *authz.Principal) error {
	if err := h.svc.DeleteTeam(r.Context(), caller, r.PathValue("ws"), r.PathValue("tid")); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// putMember answers PUT /workspaces/{ws}/teams/{tid}/members/{uid} with
// 204: the user is a member afterwards (also when it already was).
func (h *Handler) putMember(w http.ResponseWriter, r *http.Request, caller *authz.Principal) error {
	if err := decodeBody(w, r, &membership{}, true); err != nil {
		return err
	}
	if err := h.svc.AddMember(r.Context(), caller, r.PathValue("ws"), r.PathValue("tid"), r.PathValue("uid")); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// deleteMember answers DELETE /workspaces/{ws}/teams/{tid}/members/{uid}
// with 204: the user is not a member afterwards (also when it was not).
func (h *Handler) deleteMember(w http.ResponseWriter, r *http.Request, caller *authz.Principal) error {
	if err := h.svc.RemoveMember(r.Context(), caller, r.PathValue("ws"), r.PathValue("tid"), r.PathValue("uid")); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}
