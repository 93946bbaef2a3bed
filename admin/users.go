package admin

import (
	"net/http"
	"strconv"

	"go.uber.org/zap"

	"github.com/apiusers/apiusers/authz"
)

// userOut is a user as the users and invitations endpoints answer it:
// with what the caller may do with it ("allowed", authz.Allowed), so that
// a client offers only what will not be refused.
type userOut struct {
	*authz.User
	Allowed []string `json:"allowed"`
}

// createdOut is a created user (and its first key) with "allowed".
type createdOut struct {
	*authz.CreatedUser
	Allowed []string `json:"allowed"`
}

// allowed returns what caller may do with each user of ws named in ids,
// for an answer that reads users; a failure fails the answer.
func (h *Handler) allowed(r *http.Request, caller *authz.Principal, ws string, ids ...string) ([][]string, error) {
	return h.svc.Allowed(r.Context(), caller, authOf(r).console, ws, ids...)
}

// allowedAfter is allowed for the answer of a change that is made already:
// on a failure it logs and allows nothing (the change is not undone, nor
// answered as failed).
func (h *Handler) allowedAfter(r *http.Request, caller *authz.Principal, ws, id string) []string {
	a, err := h.allowed(r, caller, ws, id)
	if err != nil {
		h.log.Warn("reading what the caller may do with a user it changed failed: its answer allows nothing",
			zap.String("workspace", ws), zap.String("user_id", id), zap.Error(err))
		return []string{}
	}
	return a[0]
}

// statusChange is the body of POST /workspaces/{ws}/users/{id}/status.
type statusChange struct {
	// Status is active, inactive or trash.
	Status authz.Status `json:"status"`
}

// userFilterOf reads the user list filters kind, role, status, team and q
// (the service rejects values that do not exist).
func userFilterOf(r *http.Request) (authz.UserFilter, error) {
	q := r.URL.Query()
	var f authz.UserFilter
	var err error
	var kind, role, status string
	for _, p := range []struct {
		name string
		dst  *string
	}{{"kind", &kind}, {"role", &role}, {"status", &status}, {"team", &f.Team}, {"q", &f.Q}} {
		if *p.dst, err = queryParam(q, p.name); err != nil {
			return f, err
		}
	}
	f.Kind, f.Role, f.Status = authz.Kind(kind), authz.Role(role), authz.Status(status)
	return f, nil
}

// listUsers answers GET /workspaces/{ws}/users.
func (h *Handler) listUsers(w http.ResponseWriter, r *http.Request, caller *authz.Principal) error {
	f, err := userFilterOf(r)
	if err != nil {
		return err
	}
	page, err := pageOf(r.URL.Query())
	if err != nil {
		return err
	}
	ws := r.PathValue("ws")
	items, allowed, next, err := h.svc.ListUsersAllowed(r.Context(), caller, authOf(r).console, ws, f, page)
	if err != nil {
		return err
	}
	out := make([]userOut, len(items))
	for i := range items {
		out[i] = userOut{User: &items[i], Allowed: allowed[i]}
	}
	return writeJSON(w, http.StatusOK, newList(out, next), "")
}

// createUser answers POST /workspaces/{ws}/users with 201, the user (and its
// first key when issue_key was set) and its Location.
func (h *Handler) createUser(w http.ResponseWriter, r *http.Request, caller *authz.Principal) error {
	var in authz.NewUser
	if err := decodeBody(w, r, &in, false); err != nil {
		return err
	}
	ws := r.PathValue("ws")
	u, err := h.svc.CreateUser(r.Context(), caller, ws, in)
	if err != nil {
		return err
	}
	setLocation(w, r, pathOf("workspaces", ws, "users", u.ID))
	return writeJSON(w, http.StatusCreated, createdOut{CreatedUser: u, Allowed: h.allowedAfter(r, caller, ws, u.ID)}, etag(u.Version))
}

// getUser answers GET /workspaces/{ws}/users/{id} with the ETag of the
// user's version.
func (h *Handler) getUser(w http.ResponseWriter, r *http.Request, caller *authz.Principal) error {
	ws := r.PathValue("ws")
	u, err := h.svc.GetUser(r.Context(), caller, ws, r.PathValue("id"))
	if err != nil {
		return err
	}
	allowed, err := h.allowed(r, caller, ws, u.ID)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, userOut{User: u, Allowed: allowed[0]}, etag(u.Version))
}

// patchUser answers PATCH /workspaces/{ws}/users/{id}. If-Match, when it
// names versions, must name the current one (else 412).
func (h *Handler) patchUser(w http.ResponseWriter, r *http.Request, caller *authz.Principal) error {
	cond, err := parseIfMatch(r)
	if err != nil {
		return err
	}
	var in authz.UserPatch
	if err := decodeBody(w, r, &in, false); err != nil {
		return err
	}
	ws, id := r.PathValue("ws"), r.PathValue("id")
	var version *int64
	if !cond.any {
		v, err := h.pickVersion(cond, func() (int64, error) {
			u, err := h.svc.GetUser(r.Context(), caller, ws, id)
			if err != nil {
				return 0, err
			}
			return u.Version, nil
		})
		if err != nil {
			return err
		}
		version = &v
	}
	u, err := h.svc.UpdateUser(r.Context(), caller, ws, id, in, version)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, userOut{User: u, Allowed: h.allowedAfter(r, caller, ws, u.ID)}, etag(u.Version))
}

// deleteUser answers DELETE /workspaces/{ws}/users/{id}[?erase=true] with
// 204. Only a user in trash can be deleted (else 409).
func (h *Handler) deleteUser(w http.ResponseWriter, r *http.Request, caller *authz.Principal) error {
	s, err := queryParam(r.URL.Query(), "erase")
	if err != nil {
		return err
	}
	erase := false
	if s != "" {
		if erase, err = strconv.ParseBool(s); err != nil {
			return badRequest("erase", "erase: must be true or false")
		}
	}
	if err := h.svc.DeleteUser(r.Context(), caller, r.PathValue("ws"), r.PathValue("id"), erase); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// setStatus answers POST /workspaces/{ws}/users/{id}/status with the user.
func (h *Handler) setStatus(w http.ResponseWriter, r *http.Request, caller *authz.Principal) error {
	var in statusChange
	if err := decodeBody(w, r, &in, false); err != nil {
		return err
	}
	ws := r.PathValue("ws")
	u, err := h.svc.SetStatus(r.Context(), caller, ws, r.PathValue("id"), in.Status)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, userOut{User: u, Allowed: h.allowedAfter(r, caller, ws, u.ID)}, etag(u.Version))
}
