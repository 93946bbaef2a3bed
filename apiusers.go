// Package apiusers makes Caddy an API gateway for API users. Importing it
// (as `xcaddy build --with github.com/apiusers/apiusers` does) registers the
// apiusers app and the apiusers and apiusers_admin handlers; the code lives
// in module (Caddy glue), admin (the admin API) and authz (the domain).
package apiusers

import _ "github.com/apiusers/apiusers/module"
