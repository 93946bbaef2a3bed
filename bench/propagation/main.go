// Command propagation measures how fast a revocation reaches another
// instance of a fleet (bench/run.sh): two Caddy instances, A and B, share one
// Redis store. Each round creates a key on A's admin API, uses it on B until
// B admits it (so B caches the principal), revokes it on A, and then calls
// B until it answers 401. The time from A's answer to the revocation to B's
// first 401 is the round's propagation time.
//
// Its output is one line of key=value pairs (milliseconds):
//
//	rounds=200 failures=0 p50_ms=… p99_ms=… max_ms=…
package main

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log"
	"net/http"
	"os"
	"slices"
	"strings"
	"time"
)

func main() {
	a := flag.String("a", "", "instance A's base URL, such as http://127.0.0.1:8081")
	b := flag.String("b", "", "instance B's base URL")
	admin := flag.String("admin", "/admin", "where the admin API is mounted on A")
	api := flag.String("api", "/api/ping", "a path of B protected by the apiusers directive")
	ws := flag.String("workspace", "", "the workspace the key's user is made in")
	rootKeyFile := flag.String("root-key-file", "", "a file holding the key of a user who manages users and keys in the workspace")
	rounds := flag.Int("rounds", 200, "how many keys to revoke")
	timeout := flag.Duration("timeout", 5*time.Second, "how long B may keep admitting a revoked key before the round fails")
	flag.Parse()
	if *a == "" || *b == "" || *ws == "" || *rootKeyFile == "" {
		log.Fatal("propagation: -a, -b, -workspace and -root-key-file are required")
	}
	raw, err := os.ReadFile(*rootKeyFile)
	if err != nil {
		log.Fatalf("propagation: %v", err)
	}
	m := &meter{
		client:  &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 4}},
		admin:   strings.TrimRight(*a, "/") + *admin + "/workspaces/" + *ws,
		api:     strings.TrimRight(*b, "/") + *api,
		rootKey: strings.TrimSpace(string(raw)),
		timeout: *timeout,
	}
	if err := m.run(*rounds); err != nil {
		log.Fatalf("propagation: %v", err)
	}
}

type meter struct {
	client  *http.Client
	admin   string // A's admin API, down to the workspace
	api     string // B's protected URL
	rootKey string
	timeout time.Duration
}

func (m *meter) run(rounds int) error {
	var user struct {
		ID string `json:"id"`
	}
	username := fmt.Sprintf("propagation-%d", time.Now().UnixNano())
	if err := m.adminCall("POST", "/users", map[string]any{"username": username, "kind": "api", "role": "api_user"}, http.StatusCreated, &user); err != nil {
		return fmt.Errorf("creating the user: %w", err)
	}
	var times []time.Duration
	failures := 0
	for i := range rounds {
		d, err := m.round(user.ID, i)
		if err != nil {
			failures++
			fmt.Fprintf(os.Stderr, "round %d: %v\n", i+1, err)
			if failures > rounds/10 {
				return fmt.Errorf("%d of %d rounds failed", failures, i+1)
			}
			continue
		}
		times = append(times, d)
	}
	if len(times) == 0 {
		return fmt.Errorf("every round failed")
	}
	slices.Sort(times)
	ms := func(d time.Duration) string { return fmt.Sprintf("%.2f", float64(d)/float64(time.Millisecond)) }
	fmt.Printf("rounds=%d failures=%d p50_ms=%s p99_ms=%s max_ms=%s\n",
		rounds, failures, ms(pct(times, 50)), ms(pct(times, 99)), ms(times[len(times)-1]))
	return nil
}

// round runs one revocation and returns its propagation time.
func (m *meter) round(userID string, i int) (time.Duration, error) {
	var key struct {
		ID  string `json:"id"`
		Key string `json:"key"`
	}
	if err := m.adminCall("POST", "/users/"+userID+"/keys", map[string]any{"name": fmt.Sprintf("round-%d", i+1)}, http.StatusCreated, &key); err != nil {
		return 0, fmt.Errorf("creating a key: %w", err)
	}
	// B admits the key once it has the new key in the principal it caches
	// (a principal cached in an earlier round is invalidated by the create).
	deadline := time.Now().Add(m.timeout)
	for {
		code, err := m.call(key.Key)
		if err != nil {
			return 0, err
		}
		if code == http.StatusOK {
			break
		}
		if time.Now().After(deadline) {
			return 0, fmt.Errorf("instance B never admitted the new key (last status %d)", code)
		}
		time.Sleep(time.Millisecond)
	}
	if err := m.adminCall("DELETE", "/users/"+userID+"/keys/"+key.ID, nil, http.StatusNoContent, nil); err != nil {
		return 0, fmt.Errorf("revoking the key: %w", err)
	}
	revoked := time.Now()
	for {
		code, err := m.call(key.Key)
		if err != nil {
			return 0, err
		}
		if code == http.StatusUnauthorized {
			return time.Since(revoked), nil
		}
		if code != http.StatusOK {
			return 0, fmt.Errorf("instance B answered %d to a revoked key", code)
		}
		if time.Since(revoked) > m.timeout {
			return 0, fmt.Errorf("instance B still admits the key %s after the revocation", m.timeout)
		}
	}
}

// call sends one request with key to B and returns the status.
func (m *meter) call(key string) (int, error) {
	req, err := http.NewRequest("GET", m.api, nil)
	if err != nil {
		return 0, err
	}
	req.Header.Set("Authorization", "Bearer "+key)
	resp, err := m.client.Do(req)
	if err != nil {
		return 0, fmt.Errorf("calling B: %w", err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode, nil
}

// adminCall sends one admin API request to A and decodes the answer into
// out (when not nil).
func (m *meter) adminCall(method, path string, in any, want int, out any) error {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return err
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, m.admin+path, body)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+m.rootKey)
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := m.client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	if resp.StatusCode != want {
		return fmt.Errorf("%s %s: status %d: %s", method, path, resp.StatusCode, bytes.TrimSpace(b))
	}
	if out != nil {
		return json.Unmarshal(b, out)
	}
	return nil
}

// pct returns the p-th percentile of sorted (nearest rank).
func pct(sorted []time.Duration, p int) time.Duration {
	i := (len(sorted)*p + 99) / 100
	return sorted[max(0, min(len(sorted)-1, i-1))]
}
