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
	CollTeams      = "teams"      // id -> Team
	CollMeta       = "meta"       // "workspace" -> Workspace
	collKeysPrefix = "keys:"      // "keys:<user id>": key id -> Key
)

// KeysCollection is the collection holding the key metadata of one user.
func KeysCollection(ws, userID string) Collection {
	return Collection{Workspace: ws, Name: collKeysPrefix + userID}
}

// Entry is one record returned by a scan.
type Entry struct {
	ID    string
	Value []byte
}

// Tx reads and writes records inside a transaction. Writes become visible to
// other transactions only when the transaction commits, and either all of them
// commit or none does. Values are opaque bytes (the domain stores JSON).
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
// as stored (JSON). Missing teams are skipped.
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
