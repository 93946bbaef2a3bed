package admin

import (
	"net/http"

	"github.com/apiusers/apiusers/authz"
)

// getMe answers GET /me: the caller, its effective permissions and grants.
// The ETag is the caller's user version, which PATCH /me checks.
func (h *Handler) getMe(w http.ResponseWriter, r *http.Request, caller *authz.Principal) error {
	me, err := h.svc.Me(r.Context(), caller)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, me, etag(me.User.Version))
}

// patchMe answers PATCH /me: the caller changes its own email, language
// and timezone, and gets its user back.
func (h *Handler) patchMe(w http.ResponseWriter, r *http.Request, caller *authz.Principal) error {
	cond, err := parseIfMatch(r)
	if err != nil {
		return err
	}
	var in authz.SelfPatch
	if err := decodeBody(w, r, &in, false); err != nil {
		return err
	}
	var u *authz.User
	if cond.any {
		u, err = h.svc.UpdateMe(r.Context(), caller, in, nil)
	} else {
		var v int64
		if v, err = h.pickVersion(cond, func() (int64, error) {
			me, err := h.svc.Me(r.Context(), caller)
			if err != nil {
				return 0, err
			}
			return me.User.Version, nil
		}); err != nil {
			return err
		}
		u, err = h.svc.UpdateMe(r.Context(), caller, in, &v)
	}
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, u, etag(u.Version))
}

// pickVersion returns the one version a conditional update must check. An
// If-Match listing a single version names it; one listing several needs
// the current version (read with current) and is stale unless it is
// listed; one listing none of ours is stale.
func (h *Handler) pickVersion(cond ifMatch, current func() (int64, error)) (int64, error) {
	switch len(cond.versions) {
	case 0:
		return 0, errStale
	case 1:
		return cond.versions[0], nil
	}
	v, err := current()
	if err != nil {
		return 0, err
	}
	if !cond.matches(v) {
		return 0, errStale
	}
	return v, nil
}
