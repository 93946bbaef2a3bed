// Package authz is the domain of apiusers, free of Caddy and of net/http
// routing: who the callers are, what they may do, and the rules of every
// admin operation. A Service carries it out over a Store.
//
// Its files, by concern:
//
//	model.go, inputs.go        workspaces, users, teams, keys; the bodies of admin operations
//	validate.go, names.go      well-formed input; the canonical form of names
//	roles.go, rules.go         built-in roles and permissions; who may manage whom
//	principal.go, cache.go, bounded.go   a caller's effective rights; the in-process cache of them
//	                           and the bounded map it keeps them in
//	token.go, authenticate.go  API keys (signed JWTs), and turning a key into a principal
//	service.go                 the Service, its configuration and invalidation
//	update.go                  the one path that changes a versioned record (users, teams)
//	workspaces.go, users.go, teams.go, keys.go, bulk.go   the admin operations
//	people.go, accounts.go, invitations.go, passwords.go, sessions.go, signin.go, throttle.go
//	                           people: accounts, memberships, passwords, sessions
//	messages.go, audit.go      API messages (recorded calls) and the audit log
//	lastused.go                credentials' last_used_at, written off the request path in batches (Toucher)
//	store.go, records.go, stored.go, page.go   the Store the domain needs, typed records, their stored forms, paging
//	errors.go                  the errors every operation returns, by kind
//
// and its packages: ids (record ids), audit (the audit log's entries and
// their codec), recorder (writing API messages in batches), limit (rate
// limits and quotas), password (hashing and policy), throttle (failure
// counting), filestore and redisstore (the stores), storetest (the
// conformance suite every store passes).
package authz
