// Command caddy is Caddy with its standard modules and the apiusers plugin.
package main

import (
	caddycmd "github.com/caddyserver/caddy/v2/cmd"

	// Caddy's standard modules.
	_ "github.com/caddyserver/caddy/v2/modules/standard"

	// The apiusers plugin.
	_ "github.com/apiusers/apiusers/module"
)

func main() {
	caddycmd.Main()
}
