// Package console is the apiusers web console: static HTML, CSS and
// JavaScript modules embedded in the binary, served beside the admin API at
// its mount. The console is a client of the admin API only: everything it
// does, the API does (it has no endpoints of its own).
//
// Paths, relative to the mount:
//
//	GET /           the console's HTML shell (screens are routed by the URL fragment)
//	GET /accept     the same shell: accepting an invitation (?token=…)
//	GET /reset      the same shell: setting a new password from a reset link (?token=…)
//	GET /assets/…   the embedded files (JavaScript modules, CSS, strings)
//
// Every other path belongs to the API. Answers carry a Content-Security-
// Policy that allows only the console's own files (no inline script or
// style, no frames), and never a Referer: the pages with a one-time token
// in their URL must not hand it to anyone.
package console

import (
	"crypto/sha256"
	"embed"
	"encoding/base64"
	"io/fs"
	"mime"
	"net/http"
	"path"
	"strconv"
	"strings"
)

//go:embed index.html assets
var files embed.FS

// CSP is the Content-Security-Policy of every console answer: the console's
// own scripts, styles, images and API calls, nothing inline, no framing, no
// <base> and no form posts elsewhere.
const CSP = "default-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'; object-src 'none'"

// Pages are the paths answered with the HTML shell.
var Pages = []string{"/", "/accept", "/reset"}

// asset is one embedded file, ready to serve.
type asset struct {
	body  []byte
	ctype string
	etag  string
}

// Handler serves the console. Make one with New; it is safe for concurrent
// use and holds no state beyond the embedded files.
type Handler struct {
	shell  asset
	assets map[string]asset // by path below /assets/
}

// New makes the console handler over the embedded files.
func New() *Handler {
	h := &Handler{assets: map[string]asset{}}
	h.shell = load("index.html")
	err := fs.WalkDir(files, "assets", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		h.assets[strings.TrimPrefix(p, "assets/")] = load(p)
		return nil
	})
	if err != nil { // the embedded tree is fixed at build time
		panic("console: reading embedded assets: " + err.Error())
	}
	return h
}

func load(p string) asset {
	b, err := files.ReadFile(p)
	if err != nil {
		panic("console: reading embedded " + p + ": " + err.Error())
	}
	ct := mime.TypeByExtension(path.Ext(p))
	switch path.Ext(p) {
	case ".js":
		ct = "text/javascript; charset=utf-8"
	case ".json":
		ct = "application/json"
	case ".svg":
		ct = "image/svg+xml"
	}
	if ct == "" {
		ct = "application/octet-stream"
	}
	sum := sha256.Sum256(b)
	return asset{body: b, ctype: ct, etag: `"` + base64.RawURLEncoding.EncodeToString(sum[:12]) + `"`}
}

// Serves reports whether r is for the console rather than the API: a GET or
// HEAD of a page (Pages) or of anything under /assets/.
func (h *Handler) Serves(r *http.Request) bool {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		return false
	}
	p := r.URL.Path
	if strings.HasPrefix(p, "/assets/") {
		return true
	}
	for _, pg := range Pages {
		if p == pg {
			return true
		}
	}
	return false
}

// SecretInURL reports whether r is a request for a console page whose URL
// carries a one-time secret (the token of an invitation or a password
// reset), which must not reach any log.
func SecretInURL(r *http.Request) bool {
	if r.URL.Path != "/accept" && r.URL.Path != "/reset" {
		return false
	}
	return r.URL.RawQuery != ""
}

// ServeHTTP answers a request Serves accepted: the shell for a page, the
// embedded file for an asset (with an ETag; 304 when it matches), 404 for
// an asset that does not exist.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	hdr := w.Header()
	hdr.Set("Content-Security-Policy", CSP)
	hdr.Set("X-Content-Type-Options", "nosniff")
	hdr.Set("X-Frame-Options", "DENY")
	hdr.Set("Referrer-Policy", "no-referrer")
	hdr.Set("Cross-Origin-Opener-Policy", "same-origin")
	hdr.Set("Cross-Origin-Resource-Policy", "same-origin")

	a, ok := h.shell, true
	if name, isAsset := strings.CutPrefix(r.URL.Path, "/assets/"); isAsset {
		a, ok = h.assets[name]
		// Revalidated on every use (a new build has new ETags), but
		// answered with a 304 when nothing changed.
		hdr.Set("Cache-Control", "no-cache")
	} else {
		hdr.Set("Cache-Control", "no-store")
	}
	if !ok {
		hdr.Set("Content-Type", "text/plain; charset=utf-8")
		w.WriteHeader(http.StatusNotFound)
		w.Write([]byte("no such console file\n"))
		return
	}
	hdr.Set("ETag", a.etag)
	if match := r.Header.Get("If-None-Match"); match != "" && etagListed(match, a.etag) {
		w.WriteHeader(http.StatusNotModified)
		return
	}
	hdr.Set("Content-Type", a.ctype)
	hdr.Set("Content-Length", strconv.Itoa(len(a.body)))
	w.WriteHeader(http.StatusOK)
	if r.Method != http.MethodHead {
		w.Write(a.body)
	}
}

// etagListed reports whether the If-None-Match list names tag (weak
// comparison, as RFC 9110 asks for If-None-Match).
func etagListed(list, tag string) bool {
	for _, t := range strings.Split(list, ",") {
		t = strings.TrimPrefix(strings.TrimSpace(t), "W/")
		if t == "*" || t == tag {
			return true
		}
	}
	return false
}

// Size is the total size of the embedded files in bytes (the shell and
// every asset), uncompressed.
func (h *Handler) Size() int {
	n := len(h.shell.body)
	for _, a := range h.assets {
		n += len(a.body)
	}
	return n
}
