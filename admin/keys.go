package admin

import (
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/apiusers/apiusers/authz"
)

// regenerate is the body of POST …/keys/{kid}/regenerate. The body may be
// empty: the old key then stops working at once.
type regenerate struct {
	// Grace is how long the old key keeps working, as a Go duration
	// ("24h", "90m"). Default: 0, revoked at once.
	Grace string `json:"grace,omitempty"`
}

// listKeys answers GET /workspaces/{ws}/users/{id}/keys with the metadata of
// the user's live keys, in id (creation) order. The service returns every
// key of a user (at most authz.MaxKeysPerUser), so pages are cut here, with
// the same limit and cursor rules as every other list.
func (h *Handler) listKeys(w http.ResponseWriter, r *http.Request, caller *authz.Principal) error {
	page, err := pageOf(r.URL.Query())
	if err != nil {
		return err
	}
	list := "keys:" + r.PathValue("ws") + "/" + r.PathValue("id")
	after, err := h.svc.DecodeCursor(list, page.Cursor)
	if err != nil {
		return err
	}
	keys, err := h.svc.ListKeys(r.Context(), caller, r.PathValue("ws"), r.PathValue("id"))
	if err != nil {
		return err
	}
	slices.SortFunc(keys, func(a, b authz.Key) int { return strings.Compare(a.ID, b.ID) })
	i, _ := slices.BinarySearchFunc(keys, after, func(k authz.Key, id string) int {
		if k.ID <= id {
			return -1
		}
		return 1
	})
	keys = keys[i:]
	next := ""
	if len(keys) > page.Limit {
		keys = keys[:page.Limit]
		next = h.svc.EncodeCursor(list, keys[len(keys)-1].ID)
	}
	return writeJSON(w, http.StatusOK, newList(keys, next), "")
}

// keyPath is the path of key kid of user id in ws, relative to the mount.
func keyPath(ws, id, kid string) string {
	return pathOf("workspaces", ws, "users", id, "keys", kid)
}

// createKey answers POST /workspaces/{ws}/users/{id}/keys with 201, the key
// (shown in full only here, in regenerate and in reveal) and its Location.
func (h *Handler) createKey(w http.ResponseWriter, r *http.Request, caller *authz.Principal) error {
	var in authz.NewKey
	if err := decodeBody(w, r, &in, true); err != nil {
		return err
	}
	ws, id := r.PathValue("ws"), r.PathValue("id")
	k, err := h.svc.CreateKey(r.Context(), caller, ws, id, in)
	if err != nil {
		return err
	}
	setLocation(w, r, keyPath(ws, id, k.ID))
	return writeJSON(w, http.StatusCreated, k, "")
}

// regenerateKey answers POST …/keys/{kid}/regenerate with 201 and the new
// key; the old one is revoked at once or after the grace period.
func (h *Handler) regenerateKey(w http.ResponseWriter, r *http.Request, caller *authz.Principal) error {
	var in regenerate
	if err := decodeBody(w, r, &in, true); err != nil {
		return err
	}
	var grace time.Duration
	if in.Grace != "" {
		var err error
		if grace, err = time.ParseDuration(in.Grace); err != nil || grace < 0 {
			return badRequest("grace", `grace: must be a non-negative duration such as "24h"`)
		}
	}
	ws, id := r.PathValue("ws"), r.PathValue("id")
	k, err := h.svc.RegenerateKey(r.Context(), caller, ws, id, r.PathValue("kid"), grace)
	if err != nil {
		return err
	}
	setLocation(w, r, keyPath(ws, id, k.ID))
	return writeJSON(w, http.StatusCreated, k, "")
}

// revealKey answers POST …/keys/{kid}/reveal with the same key again
// (keys.reveal; audited by the service). Any request body is ignored.
func (h *Handler) revealKey(w http.ResponseWriter, r *http.Request, caller *authz.Principal) error {
	k, err := h.svc.RevealKey(r.Context(), caller, r.PathValue("ws"), r.PathValue("id"), r.PathValue("kid"))
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, k, "")
}

// patchKey answers PATCH …/keys/{kid} with the key: its own rate_limit
// and credits (null removes them). The caller must be allowed to manage
// the user's keys, and not be the user.
func (h *Handler) patchKey(w http.ResponseWriter, r *http.Request, caller *authz.Principal) error {
	var in authz.KeyPatch
	if err := decodeBody(w, r, &in, false); err != nil {
		return err
	}
	k, err := h.svc.UpdateKey(r.Context(), caller, r.PathValue("ws"), r.PathValue("id"), r.PathValue("kid"), in)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, k, "")
}

// getKey answers GET …/keys/{kid} with the key's metadata (the Location
// of a created or regenerated key).
func (h *Handler) getKey(w http.ResponseWriter, r *http.Request, caller *authz.Principal) error {
	k, err := h.svc.GetKey(r.Context(), caller, r.PathValue("ws"), r.PathValue("id"), r.PathValue("kid"))
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, k, "")
}

// revokeKey answers DELETE …/keys/{kid} with 204: the key stops working at
// once.
func (h *Handler) revokeKey(w http.ResponseWriter, r *http.Request, caller *authz.Principal) error {
	if err := h.svc.RevokeKey(r.Context(), caller, r.PathValue("ws"), r.PathValue("id"), r.PathValue("kid")); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}
