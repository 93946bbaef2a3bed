package redistest

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// MasterName is the name the sentinel of a SentinelSet monitors its master
// under.
const MasterName = "mymaster"

const (
	// Sentinel timings: a master unanswering for downAfter is down; a
	// failover may take failoverTimeout.
	downAfter       = 1000 * time.Millisecond
	failoverTimeout = 5000 * time.Millisecond
	// failoverWait bounds Failover: the failover itself (about a second)
	// and the old master's resynchronisation.
	failoverWait = 20 * time.Second
)

// SentinelSet is a master, one replica and one sentinel watching them.
type SentinelSet struct {
	// Sentinel is the sentinel (a redis-server in sentinel mode).
	Sentinel *Server
	// Nodes are the data servers: Nodes[0] is the master at start, Nodes[1]
	// its replica. Failover swaps their roles; Master says which is which.
	Nodes []*Server

	t        testing.TB
	password string // of the data servers
}

// StartSentinel starts a master, a replica of it (--replicaof) and a
// sentinel monitoring them as MasterName with quorum 1, a 1s
// down-after-milliseconds and a 5s failover-timeout, and waits until the
// replica is in sync and the sentinel knows both servers well enough to
// fail over. args are extra redis-server options of both data servers
// ("--appendonly", "yes", ...); with "--requirepass", <password> the
// servers authenticate to each other (masterauth) and the sentinel and the
// harness to them with it. Every process is stopped by t.Cleanup, even
// when StartSentinel fails halfway.
func StartSentinel(t testing.TB, args ...string) *SentinelSet {
	t.Helper()
	// A replica starts its full sync at once instead of waiting 5s for
	// other replicas to join a diskless transfer.
	data := append([]string{"--repl-diskless-sync-delay", "0"}, args...)
	password := optionValue(args, "--requirepass")
	if password != "" {
		// Either server may become the other's replica.
		data = append(data, "--masterauth", password)
	}
	master := Start(t, data...)
	replica := Start(t, append(slices.Clone(data), "--replicaof", "127.0.0.1", port(master.Addr))...)
	waitSynced(t, replica.Addr, master.Addr, password)

	s := &SentinelSet{Nodes: []*Server{master, replica}, t: t, password: password}
	s.Sentinel = start(t, func(dir string, p int) ([]string, error) {
		// Sentinel rewrites its configuration file: write a fresh one for
		// every start attempt.
		conf := filepath.Join(dir, "sentinel.conf")
		body := fmt.Sprintf("sentinel monitor %[1]s 127.0.0.1 %[2]s 1\n"+
			"sentinel down-after-milliseconds %[1]s %[3]d\n"+
			"sentinel failover-timeout %[1]s %[4]d\n",
			MasterName, port(master.Addr), downAfter.Milliseconds(), failoverTimeout.Milliseconds())
		if password != "" {
			body += fmt.Sprintf("sentinel auth-pass %s %s\n", MasterName, password)
		}
		if err := os.WriteFile(conf, []byte(body), 0o600); err != nil {
			return nil, fmt.Errorf("writing %s: %w", conf, err)
		}
		// The configuration file must come first.
		return append([]string{conf, "--sentinel"}, commandLine(dir, p, nil)...), nil
	})
	s.waitReady(master.Addr, replica.Addr)
	return s
}

// SentinelAddrs returns the host:port of every sentinel (there is one).
func (s *SentinelSet) SentinelAddrs() []string { return []string{s.Sentinel.Addr} }

// Master returns the host:port of the master as the sentinel reports it.
func (s *SentinelSet) Master() string {
	s.t.Helper()
	addr, err := s.master()
	if err != nil {
		s.t.Fatalf("redistest: asking the sentinel for the master: %v", err)
	}
	return addr
}

func (s *SentinelSet) master() (string, error) {
	c := s.client()
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	hp, err := c.GetMasterAddrByName(ctx, MasterName).Result()
	if err != nil {
		return "", err
	}
	if len(hp) != 2 {
		return "", fmt.Errorf("master address %q", hp)
	}
	return net.JoinHostPort(hp[0], hp[1]), nil
}

// Failover makes the sentinel fail the master over to the replica
// (SENTINEL FAILOVER, which needs no agreement and does not wait for the
// master to go down), waits until the failover is over (the sentinel
// reports the new master and has told its subscribers, clients such as
// go-redis's failover client, with +switch-master) and the new master says
// it is master, then makes the old master a replica of the new one and
// waits until it is in sync. It returns the new master. Clients learn of
// the switch asynchronously: right after Failover, a client may still
// write to the old master for a moment and be refused (READONLY).
//
// The sentinel would reconfigure the old master on its own, but only some
// 10s later (it waits for the old master's next INFO report); Failover
// does it at once so tests need not wait. Until it is done the new master
// has no replica, so writes waiting for one fail.
func (s *SentinelSet) Failover() string {
	s.t.Helper()
	old := s.Master()
	var replica string
	for _, n := range s.Nodes {
		if n.Addr != old {
			replica = n.Addr
		}
	}
	s.waitReady(old, replica)

	c := s.client()
	defer c.Close()
	waitFor(s.t, failoverWait, func() (bool, string) {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		defer cancel()
		// INPROG or NOGOODSLAVE: try again shortly.
		if err := c.Failover(ctx, MasterName).Err(); err != nil {
			return false, "SENTINEL FAILOVER: " + err.Error()
		}
		return true, ""
	})
	waitFor(s.t, failoverWait, func() (bool, string) {
		// The sentinel names the promoted replica while it still
		// reconfigures the other replicas; the failover is over (and
		// +switch-master published to clients) once its master entry has
		// the new address and no failover flag.
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		defer cancel()
		m, err := c.Master(ctx, MasterName).Result()
		if err != nil {
			return false, "SENTINEL MASTER: " + err.Error()
		}
		addr := net.JoinHostPort(m["ip"], m["port"])
		switch {
		case addr == old:
			return false, "the sentinel still reports " + old + " as master"
		case addr != replica:
			return false, fmt.Sprintf("the sentinel reports %s as master, want %s", addr, replica)
		case m["flags"] != "master":
			return false, fmt.Sprintf("the sentinel reports master %s with flags %q", addr, m["flags"])
		}
		role, err := infoField(addr, s.password, "replication", "role")
		if err != nil || role != "master" {
			return false, fmt.Sprintf("%s reports role %q (%v)", addr, role, err)
		}
		return true, ""
	})
	host, p, _ := net.SplitHostPort(replica)
	if _, err := command(old, s.password, "REPLICAOF", host, p); err != nil {
		s.t.Fatalf("redistest: making the old master %s a replica of %s: %v", old, replica, err)
	}
	waitSynced(s.t, old, replica, s.password)
	return replica
}

// waitReady waits until the sentinel reports master as master and knows
// replica well enough to promote it: in sync, and recently heard from.
func (s *SentinelSet) waitReady(master, replica string) {
	s.t.Helper()
	c := s.client()
	defer c.Close()
	waitFor(s.t, failoverWait, func() (bool, string) {
		addr, err := s.master()
		if err != nil {
			return false, err.Error()
		}
		if addr != master {
			return false, fmt.Sprintf("the sentinel reports %s as master, want %s", addr, master)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		defer cancel()
		replicas, err := c.Replicas(ctx, MasterName).Result()
		if err != nil {
			return false, "SENTINEL REPLICAS: " + err.Error()
		}
		for _, r := range replicas {
			if net.JoinHostPort(r["ip"], r["port"]) != replica {
				continue
			}
			// Sentinel promotes only a replica whose INFO it has had in the
			// last 30s (before the first, info-refresh is huge); it asks
			// every 10s.
			refresh, _ := strconv.Atoi(r["info-refresh"])
			if r["flags"] == "slave" && r["master-link-status"] == "ok" && refresh < 20000 {
				return true, ""
			}
			return false, fmt.Sprintf("the sentinel sees replica %s with flags %q, link %q, info %sms old",
				replica, r["flags"], r["master-link-status"], r["info-refresh"])
		}
		return false, fmt.Sprintf("the sentinel does not know replica %s yet", replica)
	})
}

func (s *SentinelSet) client() *redis.SentinelClient {
	return redis.NewSentinelClient(&redis.Options{
		Addr: s.Sentinel.Addr, DialTimeout: time.Second, ReadTimeout: 2 * time.Second, WriteTimeout: time.Second,
		MaxRetries: -1, DisableIdentity: true,
	})
}

// waitSynced waits until replica is a replica of master with its link up
// and master counts it as an online replica.
func waitSynced(t testing.TB, replica, master, password string) {
	t.Helper()
	waitFor(t, failoverWait, func() (bool, string) {
		info, err := command(replica, password, "INFO", "replication")
		if err != nil {
			return false, err.Error()
		}
		s, _ := info.(string)
		host, p, _ := net.SplitHostPort(master)
		if field(s, "master_host") != host || field(s, "master_port") != p || field(s, "master_link_status") != "up" {
			return false, fmt.Sprintf("%s is not in sync with %s: %s", replica, master, strings.Join(strings.Fields(s), " "))
		}
		info, err = command(master, password, "INFO", "replication")
		if err != nil {
			return false, err.Error()
		}
		s, _ = info.(string)
		for i := 0; ; i++ {
			v := field(s, "slave"+strconv.Itoa(i))
			if v == "" {
				return false, fmt.Sprintf("%s does not list %s as a replica yet", master, replica)
			}
			_, rp, _ := net.SplitHostPort(replica)
			if strings.Contains(v, "port="+rp+",") && strings.Contains(v, "state=online") {
				return true, ""
			}
		}
	})
}

// infoField returns one field of one INFO section of the server at addr.
func infoField(addr, password, section, name string) (string, error) {
	info, err := command(addr, password, "INFO", section)
	if err != nil {
		return "", err
	}
	s, _ := info.(string)
	return field(s, name), nil
}

// field returns the value of name in an INFO reply ("" when absent).
func field(info, name string) string {
	for line := range strings.Lines(info) {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), name+":"); ok {
			return v
		}
	}
	return ""
}

// port returns the port of host:port.
func port(addr string) string {
	_, p, _ := net.SplitHostPort(addr)
	return p
}
