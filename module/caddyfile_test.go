package module

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile"
)

const secret32 = "0123456789abcdef0123456789abcdef"

func TestUnmarshalApp(t *testing.T) {
	cases := []struct {
		name  string
		input string
		want  App
	}{
		{"empty", `apiusers`, App{}},
		{"empty block", `apiusers {
		}`, App{}},
		{"file store default dir", `apiusers {
			store file
		}`, App{Store: &StoreConfig{Type: "file"}}},
		{"file store with options", `apiusers {
			store file /var/lib/apiusers {
				lock_timeout 2s
			}
			cache_ttl 1m
			stale_ttl 5m
			retry_after 10s
			signing_algorithm HS512
		}`, App{
			Store:            &StoreConfig{Type: "file", Dir: "/var/lib/apiusers", LockTimeout: caddy.Duration(2 * time.Second)},
			CacheTTL:         caddy.Duration(time.Minute),
			StaleTTL:         caddy.Duration(5 * time.Minute),
			RetryAfter:       caddy.Duration(10 * time.Second),
			SigningAlgorithm: "HS512",
		}},
		{"redis store", `apiusers {
			store redis rediss://user:pw@redis.internal:6380/2 {
				prefix gw1
				dial_timeout 1s
				read_timeout 500ms
				write_timeout 750ms
			}
			signing_key ` + secret32 + `
		}`, App{
			Store: &StoreConfig{
				Type: "redis", URL: "rediss://user:pw@redis.internal:6380/2", Prefix: "gw1",
				DialTimeout: caddy.Duration(time.Second), ReadTimeout: caddy.Duration(500 * time.Millisecond),
				WriteTimeout: caddy.Duration(750 * time.Millisecond),
			},
			SigningKey: secret32,
		}},
		{"messages", `apiusers {
			messages_keep 500
			messages_max_age 7d
			messages_queue 1024
		}`, App{
			MessagesKeep:   500,
			MessagesMaxAge: caddy.Duration(7 * 24 * time.Hour),
			MessagesQueue:  1024,
		}},
		{"people", `apiusers {
			public_url https://console.example.com/base
			session_ttl 8h
			session_idle 30m
			invite_ttl 3d
			password_budget 5%
		}`, App{
			PublicURL:      "https://console.example.com/base",
			SessionTTL:     caddy.Duration(8 * time.Hour),
			SessionIdle:    caddy.Duration(30 * time.Minute),
			InviteTTL:      caddy.Duration(72 * time.Hour),
			PasswordBudget: 0.05,
		}},
		{"password_budget as a fraction", `apiusers {
			password_budget 0.5
		}`, App{PasswordBudget: 0.5}},
		{"placeholders", `apiusers {
			store redis {env.REDIS_URL}
			signing_key {env.APIUSERS_SIGNING_KEY}
		}`, App{
			Store:      &StoreConfig{Type: "redis", URL: "{env.REDIS_URL}"},
			SigningKey: "{env.APIUSERS_SIGNING_KEY}",
		}},
		{"redis cluster", `apiusers {
			store redis {
				cluster 10.0.0.1:7000 10.0.0.2:7000 {env.REDIS_SEEDS}
				username gateway
				password {env.REDIS_PASSWORD}
				tls
				wait_replicas 1 250ms
				prefix gw
			}
			signing_key ` + secret32 + `
		}`, App{
			Store: &StoreConfig{
				Type: "redis", Cluster: []string{"10.0.0.1:7000", "10.0.0.2:7000", "{env.REDIS_SEEDS}"},
				Username: "gateway", Password: "{env.REDIS_PASSWORD}", TLS: true,
				WaitReplicas: 1, WaitTimeout: caddy.Duration(250 * time.Millisecond), Prefix: "gw",
			},
			SigningKey: secret32,
		}},
		{"redis sentinel", `apiusers {
			store redis {
				sentinel_password {env.SENTINEL_PASSWORD}
				sentinel mymaster sentinel-1:26379 sentinel-2:26379
				db 2
				password {env.REDIS_PASSWORD}
				wait_replicas 1
			}
			signing_key ` + secret32 + `
		}`, App{
			Store: &StoreConfig{
				Type: "redis",
				Sentinel: &SentinelConfig{
					MasterName: "mymaster", Addrs: []string{"sentinel-1:26379", "sentinel-2:26379"},
					Password: "{env.SENTINEL_PASSWORD}",
				},
				DB: 2, Password: "{env.REDIS_PASSWORD}", WaitReplicas: 1,
			},
			SigningKey: secret32,
		}},
		{"auth_failures", `apiusers {
			auth_failures 20 per 30s backoff 2s
		}`, App{AuthFailures: &AuthFailures{Limit: 20, Window: caddy.Duration(30 * time.Second), Backoff: caddy.Duration(2 * time.Second)}}},
		{"auth_failures without backoff", `apiusers {
			auth_failures 5 per 1m
		}`, App{AuthFailures: &AuthFailures{Limit: 5, Window: caddy.Duration(time.Minute)}}},
		{"auth_failures off", `apiusers {
			auth_failures off
		}`, App{AuthFailures: &AuthFailures{Off: true}}},
		{"redis url with separate password", `apiusers {
			store redis redis://redis.internal:6379 {
				password {env.REDIS_PASSWORD}
			}
			signing_key ` + secret32 + `
		}`, App{
			Store:      &StoreConfig{Type: "redis", URL: "redis://redis.internal:6379", Password: "{env.REDIS_PASSWORD}"},
			SigningKey: secret32,
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var got App
			if err := got.UnmarshalCaddyfile(caddyfile.NewTestDispenser(c.input)); err != nil {
				t.Fatalf("unmarshal: %v", err)
			}
			if !reflect.DeepEqual(got, c.want) {
				t.Fatalf("got  %+v\nwant %+v", jsonOf(t, got), jsonOf(t, c.want))
			}
		})
	}
}

func jsonOf(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestUnmarshalAppErrors(t *testing.T) {
	cases := []struct {
		name, input, want string
	}{
		{"unknown option", "apiusers {\n\tstore file\n\tcolour blue\n}", `unknown apiusers option "colour", at Testfile:3`},
		{"redis without signing key", "apiusers {\n\tcache_ttl 1m\n\tstore redis redis://localhost:6379\n}", "store redis needs signing_key, so every instance verifies the same keys, at Testfile:3"},
		{"bad duration", "apiusers {\n\tcache_ttl soon\n}", `cache_ttl: bad duration "soon"`},
		{"bad stale_ttl", "apiusers {\n\tstale_ttl later\n}", `stale_ttl: bad duration "later"`},
		{"bad duration line", "apiusers {\n\tstore file\n\tcache_ttl soon\n}", "at Testfile:3"},
		{"negative duration", "apiusers {\n\tretry_after -1s\n}", "retry_after must be positive, at Testfile:2"},
		{"short signing key", "apiusers {\n\tsigning_key short\n}", "signing_key must be at least 32 bytes, got 5, at Testfile:2"},
		{"unknown store", "apiusers {\n\tstore etcd\n}", `unknown store "etcd" (want file or redis), at Testfile:2`},
		{"redis without url", "apiusers {\n\tstore redis\n}", "store redis needs a URL"},
		{"redis bad url", "apiusers {\n\tstore redis localhost:6379\n}", "URL must start with redis:// or rediss://, at Testfile:2"},
		{"redis empty block", "apiusers {\n\tsigning_key " + secret32 + "\n\tstore redis {\n\t\tprefix x\n\t}\n}", "store redis needs a URL (redis:// or rediss://), or a cluster or sentinel line in its block, at Testfile:3"},
		{"cluster with url", "apiusers {\n\tstore redis redis://x:1 {\n\t\tcluster a:1\n\t}\n}", "cluster: the url names a single server; leave it out and give username, password and tls in this block, at Testfile:3"},
		{"cluster without seeds", "apiusers {\n\tstore redis {\n\t\tcluster\n\t}\n}", "cluster needs at least one seed address (host:port), at Testfile:3"},
		{"cluster bad seed", "apiusers {\n\tstore redis {\n\t\tcluster a:1 b\n\t}\n}", `cluster: address "b": want host:port, at Testfile:3`},
		{"cluster twice", "apiusers {\n\tstore redis {\n\t\tcluster a:1\n\t\tcluster b:1\n\t}\n}", "cluster given twice, at Testfile:4"},
		{"cluster and sentinel", "apiusers {\n\tstore redis {\n\t\tcluster a:1\n\t\tsentinel m s:1\n\t}\n}", "store redis: cluster and sentinel exclude each other, at Testfile:4"},
		{"sentinel without address", "apiusers {\n\tstore redis {\n\t\tsentinel mymaster\n\t}\n}", "sentinel needs the master's name and at least one sentinel address (host:port), at Testfile:3"},
		{"sentinel bad address", "apiusers {\n\tstore redis {\n\t\tsentinel m :26379\n\t}\n}", `sentinel: address ":26379": want host:port, at Testfile:3`},
		{"sentinel password without sentinel", "apiusers {\n\tstore redis {\n\t\tcluster a:1\n\t\tsentinel_password x\n\t}\n}", "sentinel_username and sentinel_password need a sentinel line, at Testfile:4"},
		{"db without sentinel", "apiusers {\n\tstore redis redis://x:1 {\n\t\tdb 1\n\t}\n}", "db applies to sentinel only: a single server's database is the url path (redis://host:port/<db>), and a cluster has only database 0, at Testfile:3"},
		{"db negative", "apiusers {\n\tstore redis {\n\t\tsentinel m s:1\n\t\tdb -1\n\t}\n}", `db: want a database number (0 or more), got "-1", at Testfile:4`},
		{"credentials twice", "apiusers {\n\tstore redis redis://u:p@x:1 {\n\t\tpassword q\n\t}\n}", "the url already holds credentials: give them in one place, at Testfile:3"},
		{"password without value", "apiusers {\n\tstore redis redis://x:1 {\n\t\tpassword\n\t}\n}", "wrong argument count or unexpected line ending after 'password', at Testfile:3"},
		{"tls with argument", "apiusers {\n\tstore redis redis://x:1 {\n\t\ttls yes\n\t}\n}", "wrong argument count or unexpected line ending after 'yes', at Testfile:3"},
		{"wait_replicas zero", "apiusers {\n\tstore redis redis://x:1 {\n\t\twait_replicas 0\n\t}\n}", `wait_replicas: want a positive whole number, got "0", at Testfile:3`},
		{"wait_replicas bad timeout", "apiusers {\n\tstore redis redis://x:1 {\n\t\twait_replicas 1 soon\n\t}\n}", `wait_replicas: bad timeout "soon"`},
		{"wait_replicas extra", "apiusers {\n\tstore redis redis://x:1 {\n\t\twait_replicas 1 1s 2s\n\t}\n}", "wrong argument count or unexpected line ending after '2s', at Testfile:3"},
		{"redis option on file store", "apiusers {\n\tstore file {\n\t\tcluster a:1\n\t}\n}", `unknown option "cluster" of store file, at Testfile:3`},
		{"store twice", "apiusers {\n\tstore file\n\tstore file\n}", "store given twice, at Testfile:3"},
		{"file option on redis", "apiusers {\n\tstore redis redis://x {\n\t\tlock_timeout 1s\n\t}\n}", `unknown option "lock_timeout" of store redis, at Testfile:3`},
		{"redis option on file", "apiusers {\n\tstore file {\n\t\tprefix x\n\t}\n}", `unknown option "prefix" of store file, at Testfile:3`},
		{"bad algorithm", "apiusers {\n\tsigning_algorithm none\n}", `signing_algorithm "none": want HS256, HS384 or HS512, at Testfile:2`},
		{"messages_keep zero", "apiusers {\n\tmessages_keep 0\n}", `messages_keep: want a positive whole number, got "0", at Testfile:2`},
		{"messages_keep word", "apiusers {\n\tstore file\n\tmessages_keep all\n}", `messages_keep: want a positive whole number, got "all", at Testfile:3`},
		{"messages_keep missing", "apiusers {\n\tmessages_keep\n}", "wrong argument count"},
		{"messages_keep extra", "apiusers {\n\tmessages_keep 1 2\n}", "wrong argument count or unexpected line ending after '2', at Testfile:2"},
		{"messages_max_age bad", "apiusers {\n\tmessages_max_age forever\n}", `messages_max_age: bad duration "forever": time: invalid duration "forever", at Testfile:2`},
		{"messages_max_age negative", "apiusers {\n\n\tmessages_max_age -1h\n}", "messages_max_age must be positive, at Testfile:3"},
		{"messages_queue negative", "apiusers {\n\tmessages_queue -5\n}", `messages_queue: want a positive whole number, got "-5", at Testfile:2`},
		{"public_url not a URL", "apiusers {\n\tpublic_url console.example.com\n}", `public_url "console.example.com": want an absolute http:// or https:// URL without query or fragment, at Testfile:2`},
		{"public_url with a query", "apiusers {\n\tpublic_url https://x.example/?a=1\n}", "at Testfile:2"},
		{"session_ttl bad", "apiusers {\n\tsession_ttl long\n}", `session_ttl: bad duration "long"`},
		{"session_idle zero", "apiusers {\n\n\tsession_idle 0s\n}", "session_idle must be positive, at Testfile:3"},
		{"invite_ttl missing", "apiusers {\n\tinvite_ttl\n}", "wrong argument count"},
		{"password_budget zero", "apiusers {\n\tpassword_budget 0%\n}", `password_budget: want a share of the CPUs from 0.1% to 100% (such as 5% or 0.05), got "0%", at Testfile:2`},
		{"password_budget too small", "apiusers {\n\tpassword_budget 0.0000000001%\n}", `got "0.0000000001%", at Testfile:2`},
		{"password_budget beyond the machine", "apiusers {\n\n\tpassword_budget 150%\n}", `got "150%", at Testfile:3`},
		{"password_budget a word", "apiusers {\n\tpassword_budget some\n}", `got "some", at Testfile:2`},
		{"password_budget missing", "apiusers {\n\tpassword_budget\n}", "wrong argument count"},
		{"password_budget extra", "apiusers {\n\tpassword_budget 5% 10%\n}", "wrong argument count or unexpected line ending after '10%', at Testfile:2"},
		{"auth_failures zero", "apiusers {\n\tauth_failures 0 per 1m\n}", `auth_failures: "0" is not a number of failures (1 or more), at Testfile:2`},
		{"auth_failures without per", "apiusers {\n\tauth_failures 5 in 1m\n}", "auth_failures: want <n> per <duration> [backoff <duration>], or off, at Testfile:2"},
		{"auth_failures bad window", "apiusers {\n\tauth_failures 5 per soon\n}", `auth_failures per: bad duration "soon"`},
		{"auth_failures backoff beyond window", "apiusers {\n\tauth_failures 5 per 1s backoff 1m\n}", "auth_failures: backoff must be positive and at most the window, at Testfile:2"},
		{"auth_failures off with more", "apiusers {\n\tauth_failures off 5\n}", "wrong argument count"},
		{"argument after name", "apiusers foo", "wrong argument count"},
		{"extra argument", "apiusers {\n\tcache_ttl 1s 2s\n}", "wrong argument count or unexpected line ending after '2s', at Testfile:2"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var a App
			err := a.UnmarshalCaddyfile(caddyfile.NewTestDispenser(c.input))
			if err == nil {
				t.Fatalf("no error, want %q", c.want)
			}
			if !strings.Contains(err.Error(), c.want) {
				t.Fatalf("error %q does not contain %q", err, c.want)
			}
		})
	}
}

func TestGlobalOptionTwice(t *testing.T) {
	_, err := parseGlobalOption(caddyfile.NewTestDispenser("apiusers"), httpcaddyfile.App{})
	if err == nil || !strings.Contains(err.Error(), "only once") {
		t.Fatalf("err = %v", err)
	}
}

func TestUnmarshalGateway(t *testing.T) {
	cases := []struct {
		name  string
		input string
		want  Gateway
	}{
		{"bare", `apiusers`, Gateway{}},
		{"every subdirective", `apiusers {
			workspace acme
			roles api_user api_basic
			roles admin
			require listeners.invoke
			require read on device:{re.dev.1}
			require events.write owner {re.ev.1}
			require records.edit owner {http.request.uri.query.owner} on project:p1
			key_from bearer header X-Token
			key_from query api_key cookie session
			keep_credentials
			record body 4KiB
		}`, Gateway{
			Workspace: "acme",
			Roles:     []string{"api_user", "api_basic", "admin"},
			Require: []Requirement{
				{Permission: "listeners.invoke"},
				{Permission: "read", On: "device:{re.dev.1}"},
				{Permission: "events.write", Owner: "{re.ev.1}"},
				{Permission: "records.edit", On: "project:p1", Owner: "{http.request.uri.query.owner}"},
			},
			KeyFrom: []KeySource{
				{From: "bearer"}, {From: "header", Name: "X-Token"},
				{From: "query", Name: "api_key"}, {From: "cookie", Name: "session"},
			},
			KeepCredentials: true,
			Record:          &RecordConfig{Body: 4096},
		}},
		{"record without body", `apiusers {
			record
		}`, Gateway{Record: &RecordConfig{}}},
		{"record body in bytes", `apiusers {
			record body 512
		}`, Gateway{Record: &RecordConfig{Body: 512}}},
		{"record body in kB", `apiusers {
			record body 1kB
		}`, Gateway{Record: &RecordConfig{Body: 1000}}},
		{"record body at the bound", `apiusers {
			record body 1MiB
		}`, Gateway{Record: &RecordConfig{Body: 1 << 20}}},
		{"rate limits and cost", `apiusers {
			rate_limit 10 per 1s
			rate_limit 1000 per 1d by workspace
			rate_limit 100 per 1m by ip burst 20 name per-address
			rate_limit 5 per 1s by key burst 50
			cost 3
		}`, Gateway{RateLimits: []RateLimit{
			{Requests: 10, Per: caddy.Duration(time.Second)},
			{Requests: 1000, Per: caddy.Duration(24 * time.Hour), By: "workspace"},
			{Requests: 100, Per: caddy.Duration(time.Minute), By: "ip", Burst: 20, Name: "per-address"},
			{Requests: 5, Per: caddy.Duration(time.Second), By: "key", Burst: 50},
		}, Cost: ptr(int64(3))}},
		{"a free route", `apiusers {
			cost 0
		}`, Gateway{Cost: ptr(int64(0))}},
		{"a named route", `apiusers {
			name search
			rate_limit 10 per 1s
		}`, Gateway{Name: "search", RateLimits: []RateLimit{{Requests: 10, Per: caddy.Duration(time.Second)}}}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var got Gateway
			if err := got.UnmarshalCaddyfile(caddyfile.NewTestDispenser(c.input)); err != nil {
				t.Fatalf("unmarshal: %v", err)
			}
			if !reflect.DeepEqual(got, c.want) {
				t.Fatalf("got  %s\nwant %s", jsonOf(t, got), jsonOf(t, c.want))
			}
			// What the Caddyfile accepts, provisioning accepts too.
			if err := got.compile(); err != nil {
				t.Fatalf("compile: %v", err)
			}
		})
	}
}

func TestUnmarshalGatewayErrors(t *testing.T) {
	cases := []struct {
		name, input, want string
	}{
		{"unknown subdirective", "apiusers {\n\tworkspace acme\n\tallow everyone\n}", `unknown apiusers subdirective "allow", at Testfile:3`},
		{"bad role", "apiusers {\n\troles api_user wizard\n}", `roles: unknown role "wizard", at Testfile:2`},
		{"roles without args", "apiusers {\n\troles\n}", "wrong argument count"},
		{"bad permission", "apiusers {\n\trequire Listeners!\n}", `require: "Listeners!" is not a valid permission, at Testfile:2`},
		{"require without permission", "apiusers {\n\trequire\n}", "wrong argument count"},
		{"require bad keyword", "apiusers {\n\trequire read at device:1\n}", `require: unexpected "at" (want on <resource> or owner <value>), at Testfile:2`},
		{"require bad resource", "apiusers {\n\trequire read on device\n}", `require read on "device": the resource must be type:id, at Testfile:2`},
		{"require on twice", "apiusers {\n\trequire read on a:1 on b:2\n}", "wrong argument count"},
		{"require on without value", "apiusers {\n\trequire read on\n}", "wrong argument count"},
		{"bad workspace", "apiusers {\n\tworkspace Acme!\n}", `workspace "Acme!" is not a valid workspace id, at Testfile:2`},
		{"workspace twice", "apiusers {\n\tworkspace a\n\tworkspace b\n}", "workspace given twice, at Testfile:3"},
		{"workspace extra arg", "apiusers {\n\tworkspace a b\n}", "wrong argument count"},
		{"key_from unknown", "apiusers {\n\tkey_from bearer form key\n}", `key_from: unknown source "form"`},
		{"key_from without name", "apiusers {\n\tkey_from header\n}", "key_from header needs a name, at Testfile:2"},
		{"key_from empty", "apiusers {\n\tkey_from\n}", "wrong argument count"},
		{"keep_credentials arg", "apiusers {\n\tkeep_credentials yes\n}", "wrong argument count"},
		{"record twice", "apiusers {\n\trecord\n\trecord body 1KiB\n}", "record given twice, at Testfile:3"},
		{"rate_limit without per", "apiusers {\n\trate_limit 10\n}", "rate_limit: want <n> per <duration> [by key|user|workspace|ip] [burst <n>] [name <name>], at Testfile:2"},
		{"rate_limit bad number", "apiusers {\n\trequire x\n\trate_limit ten per 1s\n}", `rate_limit: "ten" is not a number of requests from 1 to 1073741824, at Testfile:3`},
		{"rate_limit zero", "apiusers {\n\trate_limit 0 per 1s\n}", `rate_limit: "0" is not a number of requests`},
		{"rate_limit bad duration", "apiusers {\n\trate_limit 10 per second\n}", `rate_limit: per "second" is not a positive duration (such as 1s, 1m, 1h, 1d), at Testfile:2`},
		{"rate_limit bad by", "apiusers {\n\trate_limit 10 per 1s by team\n}", `rate_limit by "team": want key, user, workspace or ip, at Testfile:2`},
		{"rate_limit by twice", "apiusers {\n\trate_limit 10 per 1s by key by user\n}", "rate_limit: by given twice, at Testfile:2"},
		{"rate_limit dangling word", "apiusers {\n\trate_limit 10 per 1s burst\n}", "rate_limit: burst needs a value, at Testfile:2"},
		{"rate_limit unknown word", "apiusers {\n\trate_limit 10 per 1s every 2\n}", `rate_limit: unexpected "every" (want by, burst or name), at Testfile:2`},
		{"rate_limit bad burst", "apiusers {\n\trate_limit 10 per 1s burst -1\n}", `rate_limit burst "-1": want a number of requests from 1 to 1073741824, at Testfile:2`},
		{"rate_limit tiny window", "apiusers {\n\trate_limit 1000 per 100ms burst 1\n}", "rate_limit 1000 per 100ms burst 1: 1000 per 100ms with a burst of 1 counts over 100µs: the window must be at least 1ms (raise per or burst), at Testfile:2"},
		{"rate_limit bad name", "apiusers {\n\trate_limit 10 per 1s name Search!\n}", `rate_limit name "Search!": want lower-case letters, digits, '-', '_' and '.' (and not "credits"), at Testfile:2`},
		{"rate_limit named credits", "apiusers {\n\trate_limit 10 per 1s name credits\n}", `rate_limit name "credits"`},
		{"rate_limit names alike", "apiusers {\n\trate_limit 10 per 1s by ip\n\trate_limit 10 per 1m name ip\n}", `rate_limit: two lines of this route are named "ip"; give one a name of its own, at Testfile:3`},
		{"cost negative", "apiusers {\n\tcost -1\n}", `cost: want a whole number of credits from 0 to 9007199254740992, got "-1", at Testfile:2`},
		{"name twice", "apiusers {\n\tname a\n\tname b\n}", "name given twice, at Testfile:3"},
		{"bad name", "apiusers {\n\tname Search\n}", `name "Search": want lower-case letters, digits, '-', '_' and '.', at Testfile:2`},
		{"cost twice", "apiusers {\n\tcost 1\n\tcost 2\n}", "cost given twice, at Testfile:3"},
		{"cost without value", "apiusers {\n\tcost\n}", "wrong argument count"},
		{"record bad keyword", "apiusers {\n\trequire x\n\trecord headers\n}", `record: unexpected "headers" (want body <size>), at Testfile:3`},
		{"record body without size", "apiusers {\n\trecord body\n}", "record body needs a size, such as 4KiB, at Testfile:2"},
		{"record body bad size", "apiusers {\n\trecord body lots\n}", `record body: bad size "lots"`},
		{"record body bad size line", "apiusers {\n\n\trecord body lots\n}", "at Testfile:3"},
		{"record body zero", "apiusers {\n\trecord body 0\n}", "record body 0: want 1 byte to 1MiB, at Testfile:2"},
		{"record body too big", "apiusers {\n\trecord body 2MiB\n}", "record body 2MiB: want 1 byte to 1MiB, at Testfile:2"},
		{"record extra argument", "apiusers {\n\trecord body 1KiB now\n}", "wrong argument count or unexpected line ending after 'now', at Testfile:2"},
		{"matcher-like argument", "apiusers foo", "wrong argument count"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var g Gateway
			err := g.UnmarshalCaddyfile(caddyfile.NewTestDispenser(c.input))
			if err == nil {
				t.Fatalf("no error, want %q", c.want)
			}
			if !strings.Contains(err.Error(), c.want) {
				t.Fatalf("error %q does not contain %q", err, c.want)
			}
		})
	}
}

func TestUnmarshalAdmin(t *testing.T) {
	var a Admin
	if err := a.UnmarshalCaddyfile(caddyfile.NewTestDispenser("apiusers_admin")); err != nil {
		t.Fatal(err)
	}
	for input, want := range map[string]string{
		"apiusers_admin {\n\tconsole on\n}": `unknown apiusers_admin subdirective "console", at Testfile:2`,
		"apiusers_admin extra":              "wrong argument count",
	} {
		err := a.UnmarshalCaddyfile(caddyfile.NewTestDispenser(input))
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: err = %v, want %q", input, err, want)
		}
	}
}

// The compile step (Provision) rejects what JSON configs can express but
// the Caddyfile parser would have caught.
func TestGatewayCompileErrors(t *testing.T) {
	cases := []struct {
		g    Gateway
		want string
	}{
		{Gateway{Roles: []string{"root"}}, `unknown role "root"`},
		{Gateway{Workspace: "A B"}, "not a valid workspace id"},
		{Gateway{Require: []Requirement{{Permission: ""}}}, "not a valid permission"},
		{Gateway{Require: []Requirement{{Permission: "read", On: "nocolon"}}}, "must be type:id"},
		{Gateway{Require: []Requirement{{Permission: "events.write.own", Owner: "x"}}}, "without .own"},
		{Gateway{KeyFrom: []KeySource{{From: "header"}}}, "needs a name"},
		{Gateway{KeyFrom: []KeySource{{From: "bearer", Name: "x"}}}, "takes no name"},
		{Gateway{KeyFrom: []KeySource{{From: "body"}}}, "unknown source"},
		{Gateway{Record: &RecordConfig{Body: -1}}, "record body -1: want 0 to 1048576 bytes"},
		{Gateway{Record: &RecordConfig{Body: 1<<20 + 1}}, "want 0 to 1048576 bytes"},
	}
	for _, c := range cases {
		g := c.g
		err := g.compile()
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%+v: err = %v, want %q", c.g, err, c.want)
		}
	}
}

func ptr[T any](v T) *T { return &v }
