package authz

import (
	"context"
	"encoding/base64"
	"fmt"
)

// Cursors are the last id of the previous page, opaque to clients.

func encodeCursor(id string) string {
	if id == "" {
		return ""
	}
	return base64.RawURLEncoding.EncodeToString([]byte(id))
}

func decodeCursor(c string) (string, error) {
	if c == "" {
		return "", nil
	}
	b, err := base64.RawURLEncoding.DecodeString(c)
	if err != nil || len(b) == 0 || len(b) > 256 {
		return "", fieldErr("cursor", "is not a cursor this API returned")
	}
	return string(b), nil
}

func (p Page) normalize() (Page, string, error) {
	if p.Limit == 0 {
		p.Limit = DefaultPageSize
	}
	if p.Limit < 1 || p.Limit > MaxPageSize {
		return p, "", fieldErr("limit", "must be between 1 and %d", MaxPageSize)
	}
	after, err := decodeCursor(p.Cursor)
	return p, after, err
}

// cutPage keeps the first limit of items, read with one more than a page
// asks for, and returns the cursor of the next page: "" when there was no
// more.
func cutPage[T any](items []T, limit int, id func(*T) string) ([]T, string) {
	if len(items) <= limit {
		return items, ""
	}
	items = items[:limit]
	return items, encodeCursor(id(&items[limit-1]))
}

// listPage reads one page of collection c: up to limit records with ids
// after `after`, decoded, and the cursor of the next page ("" when there is
// none).
func listPage[T any](ctx context.Context, st Store, c Collection, after string, limit int) ([]T, string, error) {
	out := []T{}
	next := ""
	err := st.View(ctx, c.Workspace, func(tx Tx) error {
		entries, err := tx.Scan(c, "", after, limit+1)
		if err != nil {
			return err
		}
		entries, next = cutPage(entries, limit, func(e *Entry) string { return e.ID })
		out = make([]T, 0, len(entries))
		for _, e := range entries {
			var v T
			if err := decodeRecord(c, e.ID, e.Value, &v); err != nil {
				return fmt.Errorf("decoding %s/%s: %w", c.Name, e.ID, err)
			}
			out = append(out, v)
		}
		return nil
	})
	if err != nil {
		return nil, "", err
	}
	return out, next, nil
}
