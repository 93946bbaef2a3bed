package redistest

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/apiusers/apiusers/internal/apitest"
)

const (
	createTimeout = 30 * time.Second // redis-cli --cluster create
	settleTimeout = 10 * time.Second // a cluster reaching cluster_state:ok
	pollEvery     = 20 * time.Millisecond
)

// Cluster is a running Redis Cluster of masters without replicas.
type Cluster struct {
	// Nodes are the masters, in the order of their slot ranges.
	Nodes []*Server
}

// StartCluster starts a Redis Cluster of masters nodes (at least 3, what
// redis-cli accepts) without replicas on free loopback ports, assigns the
// slots with `redis-cli --cluster create`, and waits until every node
// reports cluster_state:ok and knows every other node. args are extra
// redis-server options of every node; with "--requirepass", <password>
// the harness authenticates with it. Every node is stopped by t.Cleanup,
// even when StartCluster fails halfway.
func StartCluster(t testing.TB, masters int, args ...string) *Cluster {
	t.Helper()
	if masters < 3 {
		t.Fatalf("redistest: a cluster needs at least 3 masters, not %d", masters)
	}
	cli := lookPath(t, "redis-cli")
	c := &Cluster{}
	for range masters {
		c.Nodes = append(c.Nodes, start(t, func(dir string, port int) ([]string, error) {
			// The bus port defaults to port+10000, which may be taken or
			// out of range: pick a free one.
			bus, err := apitest.ListenPort()
			if err != nil {
				return nil, fmt.Errorf("finding a free cluster bus port: %w", err)
			}
			conf := filepath.Join(dir, "nodes.conf")
			if err := os.Remove(conf); err != nil && !os.IsNotExist(err) {
				return nil, err
			}
			own := []string{
				"--cluster-enabled", "yes",
				"--cluster-config-file", conf,
				"--cluster-port", strconv.Itoa(bus),
			}
			return commandLine(dir, port, append(own, args...)), nil
		}))
	}

	password := optionValue(args, "--requirepass")
	ctx, cancel := context.WithTimeout(context.Background(), createTimeout)
	defer cancel()
	cmdArgs := append([]string{"--cluster", "create"}, c.Addrs()...)
	cmdArgs = append(cmdArgs, "--cluster-replicas", "0", "--cluster-yes")
	cmd := exec.CommandContext(ctx, cli, cmdArgs...)
	if password != "" {
		// Through the environment, not -a, which shows on ps.
		cmd.Env = append(os.Environ(), "REDISCLI_AUTH="+password)
	}
	cmd.SysProcAttr = sysProcAttr()
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("redistest: redis-cli --cluster create: %v\n%s", err, out)
	}
	for _, n := range c.Nodes {
		waitFor(t, settleTimeout, func() (bool, string) {
			info, err := command(n.Addr, password, "CLUSTER", "INFO")
			if err != nil {
				return false, err.Error()
			}
			s, _ := info.(string)
			if !strings.Contains(s, "cluster_state:ok") || !strings.Contains(s, fmt.Sprintf("cluster_known_nodes:%d", masters)) {
				return false, "cluster info on " + n.Addr + ": " + strings.Join(strings.Fields(s), " ")
			}
			return true, ""
		})
	}
	return c
}

// Addrs returns the host:port of every node.
func (c *Cluster) Addrs() []string {
	addrs := make([]string, len(c.Nodes))
	for i, n := range c.Nodes {
		addrs[i] = n.Addr
	}
	return addrs
}

// optionValue returns the value that follows option in redis-server
// arguments, or "".
func optionValue(args []string, option string) string {
	for i := len(args) - 2; i >= 0; i-- {
		if args[i] == option {
			return args[i+1]
		}
	}
	return ""
}

// command sends one command to addr on a connection of its own,
// authenticating with password unless it is empty.
func command(addr, password string, args ...any) (any, error) {
	c := redis.NewClient(&redis.Options{
		Addr: addr, Password: password, DialTimeout: time.Second, ReadTimeout: 2 * time.Second, WriteTimeout: time.Second,
		MaxRetries: -1, DisableIdentity: true,
	})
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	return c.Do(ctx, args...).Result()
}

// waitFor polls cond until it holds, failing the test after timeout with
// the last reason cond gave.
func waitFor(t testing.TB, timeout time.Duration, cond func() (ok bool, why string)) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		ok, why := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("redistest: not ready after %s: %s", timeout, why)
		}
		time.Sleep(pollEvery)
	}
}
