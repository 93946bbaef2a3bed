package admin

import (
	"net/http"
	"strings"

	"github.com/apiusers/apiusers/authz"
)

// handlerFunc serves one route. caller is the authenticated principal (nil
// on public routes). A returned error is answered as a problem (see fail);
// a handler that returns an error must not have written anything.
type handlerFunc func(w http.ResponseWriter, r *http.Request, caller *authz.Principal) error

// route is one row of the route table.
type route struct {
	method string // GET, POST, PUT, PATCH or DELETE (GET also answers HEAD)
	path   string // a net/http ServeMux path pattern, relative to the mount
	public bool   // served without authentication
	// withSession: a public route that also reads the console session
	// cookie when there is a valid one.
	withSession bool
	handle      handlerFunc
}

// routes is the route table: the only list of what the admin API serves.
// New registers every row on the mux, and a test checks the rows against
// the OpenAPI document, both ways. A new resource is new rows here plus
// its handlers in a file of its own.
func (h *Handler) routes() []route {
	return []route{
		{method: "GET", path: "/openapi.json", public: true, handle: h.openAPI},

		{method: "POST", path: "/login", public: true, handle: h.login},
		{method: "POST", path: "/logout", handle: h.logout},
		{method: "POST", path: "/invitations/accept", public: true, withSession: true, handle: h.acceptInvitation},
		{method: "POST", path: "/password-reset", public: true, handle: h.requestReset},
		{method: "POST", path: "/password-reset/confirm", public: true, handle: h.confirmReset},

		{method: "GET", path: "/me", handle: h.getMe},
		{method: "PATCH", path: "/me", handle: h.patchMe},
		{method: "POST", path: "/me/password", handle: h.changePassword},

		{method: "GET", path: "/workspaces", handle: h.listWorkspaces},
		{method: "POST", path: "/workspaces", handle: h.createWorkspace},
		{method: "GET", path: "/workspaces/{ws}", handle: h.getWorkspace},

		{method: "GET", path: "/workspaces/{ws}/users", handle: h.listUsers},
		{method: "POST", path: "/workspaces/{ws}/users", handle: h.createUser},
		{method: "GET", path: "/workspaces/{ws}/users/{id}", handle: h.getUser},
		{method: "PATCH", path: "/workspaces/{ws}/users/{id}", handle: h.patchUser},
		{method: "DELETE", path: "/workspaces/{ws}/users/{id}", handle: h.deleteUser},
		{method: "POST", path: "/workspaces/{ws}/users/{id}/status", handle: h.setStatus},
		{method: "POST", path: "/workspaces/{ws}/invitations", handle: h.invite},
		{method: "POST", path: "/workspaces/{ws}/users/{id}/invitation", handle: h.reinvite},
		{method: "POST", path: "/workspaces/{ws}/users/{id}/password-reset", handle: h.sendReset},
		{method: "PUT", path: "/workspaces/{ws}/users/{id}/password", handle: h.setPassword},
		{method: "GET", path: "/workspaces/{ws}/users/{id}/sessions", handle: h.listSessions},
		{method: "DELETE", path: "/workspaces/{ws}/users/{id}/sessions/{sid}", handle: h.endSession},

		{method: "GET", path: "/workspaces/{ws}/users/{id}/keys", handle: h.listKeys},
		{method: "POST", path: "/workspaces/{ws}/users/{id}/keys", handle: h.createKey},
		{method: "POST", path: "/workspaces/{ws}/users/{id}/keys/{kid}/regenerate", handle: h.regenerateKey},
		{method: "POST", path: "/workspaces/{ws}/users/{id}/keys/{kid}/reveal", handle: h.revealKey},
		{method: "GET", path: "/workspaces/{ws}/users/{id}/keys/{kid}", handle: h.getKey},
		{method: "PATCH", path: "/workspaces/{ws}/users/{id}/keys/{kid}", handle: h.patchKey},
		{method: "DELETE", path: "/workspaces/{ws}/users/{id}/keys/{kid}", handle: h.revokeKey},

		{method: "GET", path: "/workspaces/{ws}/teams", handle: h.listTeams},
		{method: "POST", path: "/workspaces/{ws}/teams", handle: h.createTeam},
		{method: "GET", path: "/workspaces/{ws}/teams/{tid}", handle: h.getTeam},
		{method: "PATCH", path: "/workspaces/{ws}/teams/{tid}", handle: h.patchTeam},
		{method: "DELETE", path: "/workspaces/{ws}/teams/{tid}", handle: h.deleteTeam},
		{method: "PUT", path: "/workspaces/{ws}/teams/{tid}/members/{uid}", handle: h.putMember},
		{method: "DELETE", path: "/workspaces/{ws}/teams/{tid}/members/{uid}", handle: h.deleteMember},

		{method: "GET", path: "/workspaces/{ws}/messages", handle: h.listMessages},
		{method: "GET", path: "/workspaces/{ws}/audit", handle: h.listAudit},
	}
}

// errNoRoute is the 404 of a path no route serves.
var errNoRoute = &requestError{status: http.StatusNotFound, detail: "no such resource"}

// probeMethods are the methods tried to build the Allow header of a 405.
var probeMethods = []string{"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"}

// unmatched answers a request no route matched (it is registered on "/", so
// it runs after authentication): 405 with Allow when the path exists under
// other methods, else 404.
func (h *Handler) unmatched(w http.ResponseWriter, r *http.Request, _ *authz.Principal) error {
	var allow []string
	probe := r.Clone(r.Context())
	for _, m := range probeMethods {
		probe.Method = m
		if _, pattern := h.mux.Handler(probe); pattern != "" && pattern != "/" {
			allow = append(allow, m)
		}
	}
	if len(allow) == 0 {
		return errNoRoute
	}
	w.Header().Set("Allow", strings.Join(allow, ", "))
	return &requestError{status: http.StatusMethodNotAllowed,
		detail: "method not allowed here; allowed: " + strings.Join(allow, ", ")}
}
