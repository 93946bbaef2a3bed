package admin

import (
	"net/http"

	"github.com/apiusers/apiusers/authz"
)

// getMe answers GET /me: the caller, its effective permissions and grants.
// The ETag is the caller's user version, which PATCH /me checks.
//
// For a person signed in to the console it adds the account and every
// membership; ?workspace= picks the membership that is the caller.
func (h *Handler) getMe(w http.ResponseWriter, r *http.Request, caller *authz.Principal) error {
	if c := authOf(r).console; c != nil {
		if err := h.checkWorkspace(r, caller); err != nil {
			return err
		}
		me, err := h.svc.MeAsPerson(r.Context(), caller, c)
		if err != nil {
			return err
		}
		return writeJSON(w, http.StatusOK, me, etag(me.User.Version))
	}
	me, err := h.svc.Me(r.Context(), caller)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, me, etag(me.User.Version))
}

// checkWorkspace refuses a ?workspace= that names a workspace the person
// acting as caller has no active membership of.
func (h *Handler) checkWorkspace(r *http.Request, caller *authz.Principal) error {
	ws, err := queryParam(r.URL.Query(), "workspace")
	if err != nil {
		return err
	}
	if ws != "" && caller.Workspace != ws {
		return &authz.Error{Kind: authz.ErrForbidden, Field: "workspace", Detail: "no active membership of workspace " + ws}
	}
	return nil
}

// selfPatch is the body of PATCH /me: email, language and timezone for
// everyone; name too for a person (whose language and timezone are the
// account's, and whose email, the sign-in, is not changed here).
type selfPatch struct {
	Email    *string `json:"email,omitempty"`
	Language *string `json:"language,omitempty"`
	Timezone *string `json:"timezone,omitempty"`
	Name     *string `json:"name,omitempty"`
}

func (h *Handler) patchPerson(w http.ResponseWriter, r *http.Request, caller *authz.Principal, c *authz.ConsoleCaller, in selfPatch) error {
	if in.Email != nil && *in.Email != c.Account.Email {
		return badRequest("email", "email: a person's email is its sign-in and is not changed with PATCH /me")
	}
	acc, err := h.svc.UpdateAccount(r.Context(), c, authz.AccountPatch{Name: in.Name, Language: in.Language, Timezone: in.Timezone})
	if err != nil {
		return err
	}
	c.Account = *acc
	me, err := h.svc.MeAsPerson(r.Context(), caller, c)
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
	var body selfPatch
	if err := decodeBody(w, r, &body, false); err != nil {
		return err
	}
	if c := authOf(r).console; c != nil {
		return h.patchPerson(w, r, caller, c, body)
	}
	if body.Name != nil {
		return badRequest("name", "name: only a person signed in to the console has a name to change")
	}
	in := authz.SelfPatch{Email: body.Email, Language: body.Language, Timezone: body.Timezone}
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
