package authz

import "context"

// Collection names one keyed set of records inside one workspace. Every
// record of a workspace lives together (one bbolt bucket tree, one Redis hash
// slot), so a transaction never spans two workspaces. The workspace list
// itself is the collection {Workspace: "", Name: "workspaces"}.
type Collection struct {
	Workspace string
	Name      string
}

// Collections the domain uses. Per-user collections append the user id.
const (
	CollWorkspaces = "workspaces" // global (Workspace ""): id -> Workspace
	CollUsers      = "users"      // id -> User
	CollNames      = "names"      // lower-case username -> user id
	CollTeams      = "teams"      // id -> Team, without its members
	CollMeta       = "meta"       // "workspace" -> Workspace
	// CollTeamMembers holds one empty record per member of a team:
	// "<team id>/<user id>" -> "".
	CollTeamMembers = "teammembers"
	collKeysPrefix  = "keys:" // "keys:<user id>": key id -> Key, session id -> session, "use_"+id -> last use
)

// KeysCollection is the collection holding the credentials of one user:
// the metadata of its keys (key_…) and its bearer session tokens (ses_…),
// which LoadPrincipal reads together, so a session is checked on the
// gateway's hot path exactly as a key is.
func KeysCollection(ws, userID string) Collection {
	return Collection{Workspace: ws, Name: collKeysPrefix + userID}
}

// Entry is one record returned by a scan.
type Entry struct {
	ID    string
	Value []byte
}

// Record values. A store keeps the bytes it is given and gives them back
// unchanged; it may build on this contract to keep them smaller or to read
// them in fewer round trips, and must store any other value as well:
//
//   - A record that names itself (users, teams, keys, workspaces) starts
//     with IDHead(id), and one that names its workspace too (users,
//     teams) continues with WorkspaceHead(ws): a store may leave out what
//     the place it keeps the record in says already, and put it back.
//   - A user's value (CollUsers) is a JSON object whose member "teams"
//     lists the ids of the user's teams, which LoadPrincipal reads.
//   - A user's keys collection (KeysCollection) holds its credentials
//     (key_…, ses_…) and, beside each used one, its use record
//     (UseID, UseValue: {"id":"use_<credential id>","at":<Unix seconds>}),
//     which a Toucher writes without reading the credential's value.
//
// Audit entries are binary (package audit) and promise nothing.

// IDHead is how the value of record id starts when the record names itself.
func IDHead(id string) string { return `{"id":"` + id + `"` }

// WorkspaceHead is what follows IDHead in the value of a record that also
// names its workspace ws.
func WorkspaceHead(ws string) string { return `,"workspace":"` + ws + `"` }

// Tx reads and writes records inside a transaction. Writes become visible to
// other transactions only when the transaction commits, and either all of them
// commit or none does. Values are opaque bytes, but for the record contract
// above.
type Tx interface {
	// Get returns the value of id in c, or an error wrapping ErrNotFound.
	Get(c Collection, id string) ([]byte, error)
	// Put sets the value of id in c.
	Put(c Collection, id string, value []byte) error
	// Delete removes id from c; deleting a missing id is not an error.
	Delete(c Collection, id string) error
	// Drop removes the whole collection c.
	Drop(c Collection) error
	// Scan returns up to limit entries of c whose ids start with prefix and
	// sort after `after` (byte order), in ascending id order. limit <= 0
	// means no limit.
	Scan(c Collection, prefix, after string, limit int) ([]Entry, error)
}

// PrincipalRecord is what the gateway needs to decide about one user: the
// user record, every key of the user, and every team the user belongs to,
// as stored. Missing teams are skipped.
type PrincipalRecord struct {
	User  []byte
	Keys  [][]byte
	Teams [][]byte
}

// Store persists the domain. Implementations: authz/filestore (embedded,
// bbolt) and authz/redisstore. Both pass authz/storetest.
//
// Every error caused by the backend being unreachable (dial, timeout,
// connection reset) must wrap ErrUnavailable (see Unavailable).
type Store interface {
	// View runs fn in a read-only transaction over workspace ws ("" for the
	// global collections). fn must only touch collections of ws.
	View(ctx context.Context, ws string, fn func(Tx) error) error
	// Update runs fn in a read-write transaction over workspace ws. If fn
	// returns an error, nothing is written. An implementation may run fn
	// more than once (optimistic concurrency), so fn must not have side
	// effects outside tx.
	Update(ctx context.Context, ws string, fn func(Tx) error) error
	// LoadPrincipal reads, in one round trip to the backend, the user userID
	// of workspace ws, all of its keys (KeysCollection) and the teams listed
	// in the user's "teams" field (collection CollTeams). It returns an error
	// wrapping ErrNotFound when the user does not exist.
	LoadPrincipal(ctx context.Context, ws, userID string) (*PrincipalRecord, error)
	// Close releases the store.
	Close() error
}
