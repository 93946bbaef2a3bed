package admin

import (
	_ "embed"
	"net/http"

	"github.com/apiusers/apiusers/authz"
)

// openAPIDoc is the OpenAPI 3.1 description of this API.
//
//go:embed openapi.json
var openAPIDoc []byte

// openAPI answers GET /openapi.json, without authentication.
func (h *Handler) openAPI(w http.ResponseWriter, _ *http.Request, _ *authz.Principal) error {
	hdr := w.Header()
	hdr.Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusOK)
	w.Write(openAPIDoc)
	return nil
}
