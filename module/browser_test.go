package module

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	cdpbrowser "github.com/chromedp/cdproto/browser"
	"github.com/chromedp/cdproto/cdp"
	cdplog "github.com/chromedp/cdproto/log"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/cdproto/target"
	"github.com/chromedp/chromedp"
)

// Browser tests drive the console in Debian's real Chromium, headless,
// started by the test with a temporary profile and stopped when the test
// ends. axe-core, installed from npm into module/testdata/axe (ignored by
// git) on first use, checks every screen for serious and critical
// accessibility violations.

// chromiumPath is the browser the tests start (APIUSERS_CHROMIUM overrides).
func chromiumPath(t *testing.T) string {
	t.Helper()
	if p := os.Getenv("APIUSERS_CHROMIUM"); p != "" {
		return p
	}
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	if os.Getenv("APIUSERS_SKIP_BROWSER") == "1" {
		t.Skip("chromium not found and APIUSERS_SKIP_BROWSER=1: skipping the browser tests")
	}
	t.Fatal("chromium not found: install it (apt-get install -y chromium) or run make test")
	return ""
}

// browser is one headless Chromium.
type browser struct {
	t   *testing.T
	ctx context.Context // the browser's first tab; new tabs derive from it
}

// startBrowser starts Chromium for the test and stops it in t.Cleanup.
func startBrowser(t *testing.T) *browser {
	t.Helper()
	if testing.Short() {
		t.Skip("browser test")
	}
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(chromiumPath(t)),
		chromedp.Headless,
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck,
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.Flag("disable-extensions", true),
		chromedp.Flag("disable-default-apps", true),
		chromedp.Flag("password-store", "basic"),
		chromedp.Flag("lang", "en-US"),
		chromedp.UserDataDir(profileDir(t)),
		chromedp.WindowSize(1280, 860),
		chromedp.Env("TZ=UTC", "LANGUAGE=en_US"),
	}
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(actx)
	if err := chromedp.Run(ctx); err != nil {
		cancel()
		cancelAlloc()
		t.Fatalf("starting chromium: %v", err)
	}
	t.Cleanup(func() {
		cancel()
		cancelAlloc()
	})
	return &browser{t: t, ctx: ctx}
}

// profileDir makes Chromium's profile directory and removes it after the
// browser stopped. Not t.TempDir: Chromium's helper processes may still
// write to it for a moment after the browser's own exit, and t.TempDir
// fails the test when its one removal finds the directory not empty.
func profileDir(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "apiusers-chromium-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		for i := 0; ; i++ {
			err := os.RemoveAll(dir)
			if err == nil {
				return
			}
			if i == 50 {
				t.Errorf("removing chromium's profile: %v", err)
				return
			}
			time.Sleep(100 * time.Millisecond)
		}
	})
	return dir
}

// tab is one browser tab on the console.
type tab struct {
	t       *testing.T
	ctx     context.Context
	console string // the console's URL, http://localhost:<port>/admin/

	mu   sync.Mutex
	errs []string // script errors and CSP violations seen
}

var tabMarks atomic.Int64

// newTab opens a tab on the console at consoleURL. With a bearer key, every
// request of the tab carries `Authorization: Bearer <key>`: a test-only way
// to act as an API user or to be signed in before the console's own
// sign-in exists.
func (b *browser) newTab(t *testing.T, consoleURL, bearer string) *tab {
	t.Helper()
	return b.open(t, consoleURL, bearer, false)
}

// newPerson opens a tab in a browser context of its own (its own cookies),
// as a person who has not signed in yet.
func (b *browser) newPerson(t *testing.T, consoleURL string) *tab {
	t.Helper()
	return b.open(t, consoleURL, "", true)
}

func (b *browser) open(t *testing.T, consoleURL, bearer string, isolated bool) *tab {
	t.Helper()
	var opts []chromedp.ContextOption
	var browserContext cdp.BrowserContextID
	if isolated {
		// A browser context of its own, with its first tab in a window of
		// its own: headless Chromium opens no tab in a new context without
		// one ("no browser is open").
		err := chromedp.Run(b.ctx, chromedp.ActionFunc(func(ctx context.Context) error {
			exec := cdp.WithExecutor(ctx, chromedp.FromContext(ctx).Browser)
			id, err := target.CreateBrowserContext().WithDisposeOnDetach(true).Do(exec)
			if err != nil {
				return err
			}
			browserContext = id
			tid, err := target.CreateTarget("about:blank").WithBrowserContextID(id).WithNewWindow(true).Do(exec)
			if err != nil {
				return err
			}
			opts = append(opts, chromedp.WithTargetID(tid))
			return nil
		}))
		if err != nil {
			t.Fatalf("opening a browser context: %v", err)
		}
		t.Cleanup(func() {
			_ = chromedp.Run(b.ctx, chromedp.ActionFunc(func(ctx context.Context) error {
				return target.DisposeBrowserContext(browserContext).Do(cdp.WithExecutor(ctx, chromedp.FromContext(ctx).Browser))
			}))
		})
	}
	ctx, cancel := chromedp.NewContext(b.ctx, opts...)
	t.Cleanup(cancel)
	if err := chromedp.Run(ctx); err != nil {
		t.Fatalf("opening a tab: %v", err)
	}
	tb := &tab{t: t, ctx: ctx, console: consoleURL}
	chromedp.ListenTarget(ctx, func(ev any) {
		switch ev := ev.(type) {
		case *runtime.EventExceptionThrown:
			tb.addErr("script error: " + ev.ExceptionDetails.Error())
		case *runtime.EventConsoleAPICalled:
			if ev.Type == runtime.APITypeError {
				var parts []string
				for _, a := range ev.Args {
					parts = append(parts, string(a.Value)+a.Description)
				}
				tb.addErr("console.error: " + strings.Join(parts, " "))
			}
		case *cdplog.EventEntryAdded:
			if ev.Entry.Source == cdplog.SourceSecurity || strings.Contains(ev.Entry.Text, "Content Security Policy") {
				tb.addErr("security: " + ev.Entry.Text)
			}
		}
	})
	origin := strings.TrimSuffix(consoleURL, "/admin/")
	actions := []chromedp.Action{
		network.Enable(),
		cdplog.Enable(),
		runtime.Enable(),
	}
	grant := cdpbrowser.GrantPermissions([]cdpbrowser.PermissionType{
		cdpbrowser.PermissionTypeClipboardReadWrite, cdpbrowser.PermissionTypeClipboardSanitizedWrite,
	}).WithOrigin(origin)
	if browserContext != "" {
		grant = grant.WithBrowserContextID(browserContext)
	}
	actions = append(actions, grant)
	if bearer != "" {
		actions = append(actions, network.SetExtraHTTPHeaders(network.Headers{"Authorization": "Bearer " + bearer}))
	}
	if err := chromedp.Run(ctx, actions...); err != nil {
		t.Fatalf("opening a tab: %v", err)
	}
	return tb
}

func (tb *tab) addErr(s string) {
	tb.mu.Lock()
	tb.errs = append(tb.errs, s)
	tb.mu.Unlock()
}

// noErrors fails the test for every script error or CSP violation seen.
func (tb *tab) noErrors() {
	tb.t.Helper()
	tb.mu.Lock()
	defer tb.mu.Unlock()
	for _, e := range tb.errs {
		tb.t.Errorf("in the browser: %s", e)
	}
	tb.errs = nil
}

// run runs actions with a timeout; on failure it reports the page's text.
func (tb *tab) run(what string, actions ...chromedp.Action) {
	tb.t.Helper()
	ctx, cancel := context.WithTimeout(tb.ctx, 15*time.Second)
	defer cancel()
	if err := chromedp.Run(ctx, actions...); err != nil {
		tb.t.Fatalf("%s: %v\npage: %s", what, err, tb.pageText())
	}
}

// pageText is the visible text of the page (for failure messages).
func (tb *tab) pageText() string {
	ctx, cancel := context.WithTimeout(tb.ctx, 3*time.Second)
	defer cancel()
	var s string
	_ = chromedp.Run(ctx, chromedp.Evaluate(`(() => {
		const r = (document.querySelector('dialog[open]') || document.body).cloneNode(true);
		r.querySelectorAll('select').forEach((e) => e.replaceWith('[' + (e.value || 'select') + ']'));
		r.querySelectorAll('button, label, legend, h1, h2, h3, p, tr, li').forEach((e) => e.append(' | '));
		return r.textContent.replace(/\s+/g, ' ');
	})()`, &s))
	return s
}

// eval evaluates a JavaScript expression (awaiting a promise) into out.
func (tb *tab) eval(what, expr string, out any) {
	tb.t.Helper()
	tb.run(what, chromedp.Evaluate(expr, out, func(p *runtime.EvaluateParams) *runtime.EvaluateParams {
		return p.WithAwaitPromise(true)
	}))
}

// js quotes s as a JavaScript string literal.
func js(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

// open loads the console page at rel (such as "" or "#/profile") and waits
// for its heading.
func (tb *tab) open(rel string) {
	tb.t.Helper()
	var here string
	_ = chromedp.Run(tb.ctx, chromedp.Evaluate(`location.href`, &here))
	if here == tb.console+rel {
		// The same fragment again: a navigation would not render it anew.
		tb.run("reloading "+rel, chromedp.Reload())
	} else {
		tb.run("opening "+rel, chromedp.Navigate(tb.console+rel))
	}
	tb.waitFor("a heading", `document.querySelector('main h1') && document.querySelector('main h1').textContent.length > 0`)
	tb.settle()
}

// reload loads the page again (the console starts afresh, as after the
// person comes back to it).
func (tb *tab) reload() {
	tb.t.Helper()
	tb.run("reloading", chromedp.Reload())
	tb.waitFor("a heading", `document.querySelector('main h1') && document.querySelector('main h1').textContent.length > 0`)
	tb.settle()
}

// waitFor polls until the JavaScript condition holds, also across a
// navigation (the page the condition is about may still be loading).
func (tb *tab) waitFor(what, cond string) {
	tb.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	var last error
	for time.Now().Before(deadline) {
		ctx, cancel := context.WithTimeout(tb.ctx, 2*time.Second)
		var ok bool
		last = chromedp.Run(ctx, chromedp.Evaluate(`(() => { try { return !!(`+cond+`); } catch (e) { return false; } })()`, &ok))
		cancel()
		if last == nil && ok {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	tb.t.Fatalf("waiting for %s: not within 10s (%v)\npage: %s", what, last, tb.pageText())
}

// settle waits until no request of the page is pending and rendering is
// done (two animation frames after the last fetch).
func (tb *tab) settle() {
	tb.t.Helper()
	var ok bool
	_ = ok
	// Twice: a screen that finished its requests may start others.
	for i := 0; i < 2; i++ {
		tb.waitFor("the console to settle", `document.readyState === 'complete' && (document.documentElement.dataset.pending || '0') === '0' && !document.querySelector('[aria-busy="true"]')`)
		var frames bool
		ctx, cancel := context.WithTimeout(tb.ctx, 2*time.Second)
		_ = chromedp.Run(ctx, chromedp.Evaluate(`new Promise((r) => requestAnimationFrame(() => requestAnimationFrame(() => r(true))))`, &frames,
			func(p *runtime.EvaluateParams) *runtime.EvaluateParams { return p.WithAwaitPromise(true) }))
		cancel()
		time.Sleep(30 * time.Millisecond)
	}
}

// scopeJS is the element searches start from: the open dialog, else the page.
const scopeJS = `(document.querySelector('dialog[open]') || document)`

// findJS is a function that finds a visible element matching css whose
// normalized text (or aria-label) is text, marks it and returns its
// selector ("" when there is none).
const findJS = `(css, text, mark) => {
	const norm = (s) => (s || '').replace(/\s+/g, ' ').trim();
	const el = [...` + scopeJS + `.querySelectorAll(css)].find((e) => e.getClientRects().length > 0 && (norm(e.textContent) === text || e.getAttribute('aria-label') === text));
	if (!el) return '';
	el.setAttribute('data-test', mark);
	return '[data-test="' + mark + '"]';
}`

// find waits for a visible element matching css with the given text and
// returns a selector for it.
func (tb *tab) find(css, text string) string {
	tb.t.Helper()
	mark := "m" + strconv.FormatInt(tabMarks.Add(1), 10)
	var sel string
	tb.run(fmt.Sprintf("finding %s %q", css, text), chromedp.Poll(
		fmt.Sprintf(`(%s)(%s, %s, %s)`, findJS, js(css), js(text), js(mark)), &sel,
		chromedp.WithPollingTimeout(10*time.Second), chromedp.WithPollingInterval(50*time.Millisecond)))
	return sel
}

// has reports whether a visible element matching css with the text is on
// the screen now (in the open dialog, if any).
func (tb *tab) has(css, text string) bool {
	tb.t.Helper()
	var sel string
	tb.eval("looking for "+text, fmt.Sprintf(`(%s)(%s, %s, 'probe')`, findJS, js(css), js(text)), &sel)
	return sel != ""
}

// click clicks the visible button (or link) with the given text.
func (tb *tab) click(text string) {
	tb.t.Helper()
	sel := tb.find("button, a", text)
	tb.clickSel("clicking "+text, sel)
	tb.settle()
}

// clickSel scrolls the element to the middle of its scroll box (so that no
// sticky bar covers it) and clicks it with the mouse.
func (tb *tab) clickSel(what, sel string) {
	tb.t.Helper()
	var ok bool
	tb.eval(what, fmt.Sprintf(`(() => { document.querySelector(%s).scrollIntoView({block: 'center'}); return true; })()`, js(sel)), &ok)
	tb.run(what, chromedp.Click(sel, chromedp.ByQuery))
}

// control returns a selector for the form control labelled label.
func (tb *tab) control(label string) string {
	tb.t.Helper()
	mark := "c" + strconv.FormatInt(tabMarks.Add(1), 10)
	var sel string
	tb.run("finding the field "+label, chromedp.Poll(fmt.Sprintf(`(() => {
		const norm = (s) => (s || '').replace(/\s+/g, ' ').trim();
		const l = [...%s.querySelectorAll('label')].find((e) => e.getClientRects().length > 0 && norm(e.textContent) === %s);
		if (!l || !l.control) return '';
		l.control.setAttribute('data-test', %s);
		return '[data-test="' + %s + '"]';
	})()`, scopeJS, js(label), js(mark), js(mark)), &sel,
		chromedp.WithPollingTimeout(10*time.Second), chromedp.WithPollingInterval(50*time.Millisecond)))
	return sel
}

// fill types value into the field labelled label (after clearing it).
func (tb *tab) fill(label, value string) {
	tb.t.Helper()
	sel := tb.control(label)
	var ok bool
	tb.eval("clearing "+label, fmt.Sprintf(`(() => { document.querySelector(%s).value = ''; return true; })()`, js(sel)), &ok)
	tb.run("filling "+label, chromedp.SendKeys(sel, value, chromedp.ByQuery))
}

// choose selects the option with value in the select labelled label.
func (tb *tab) choose(label, value string) {
	tb.t.Helper()
	sel := tb.control(label)
	var ok bool
	tb.eval("choosing "+value+" in "+label, fmt.Sprintf(`(() => {
		const el = document.querySelector(%s);
		if (![...el.options].some((o) => o.value === %s)) return false;
		el.value = %s;
		el.dispatchEvent(new Event('change', {bubbles: true}));
		return true;
	})()`, js(sel), js(value), js(value)), &ok)
	if !ok {
		tb.t.Fatalf("%s has no option %q; it offers %v", label, value, tb.options(label))
	}
	tb.settle()
}

// options lists the option values of the select labelled label.
func (tb *tab) options(label string) []string {
	tb.t.Helper()
	sel := tb.control(label)
	var out []string
	tb.eval("options of "+label, fmt.Sprintf(`[...document.querySelector(%s).options].map((o) => o.value)`, js(sel)), &out)
	return out
}

// check ticks (or unticks) the checkbox labelled label.
func (tb *tab) check(label string, on bool) {
	tb.t.Helper()
	sel := tb.control(label)
	var cur bool
	tb.eval("reading "+label, fmt.Sprintf(`document.querySelector(%s).checked`, js(sel)), &cur)
	if cur != on {
		tb.clickSel("ticking "+label, sel)
	}
}

// checkIn ticks the checkbox labelled label inside the fieldset whose legend
// is legend.
func (tb *tab) checkIn(legend, label string) {
	tb.t.Helper()
	mark := "k" + strconv.FormatInt(tabMarks.Add(1), 10)
	var sel string
	tb.run("finding "+label+" in "+legend, chromedp.Poll(fmt.Sprintf(`(() => {
		const norm = (s) => (s || '').replace(/\s+/g, ' ').trim();
		const fs = [...%s.querySelectorAll('fieldset')].find((f) => f.querySelector(':scope > legend') && norm(f.querySelector(':scope > legend').textContent) === %s);
		if (!fs) return '';
		const l = [...fs.querySelectorAll('label')].find((e) => norm(e.textContent) === %s);
		if (!l || !l.control) return '';
		l.control.setAttribute('data-test', %s);
		return '[data-test="' + %s + '"]';
	})()`, scopeJS, js(legend), js(label), js(mark), js(mark)), &sel,
		chromedp.WithPollingTimeout(10*time.Second), chromedp.WithPollingInterval(50*time.Millisecond)))
	tb.clickSel("ticking "+label, sel)
}

// texts returns the normalized texts of the visible elements matching css.
func (tb *tab) texts(css string) []string {
	tb.t.Helper()
	var out []string
	tb.eval("reading "+css, fmt.Sprintf(`[...%s.querySelectorAll(%s)].filter((e) => e.getClientRects().length > 0).map((e) => e.textContent.replace(/\s+/g, ' ').trim())`, scopeJS, js(css)), &out)
	return out
}

// heading is the text of the screen's h1.
func (tb *tab) heading() string {
	tb.t.Helper()
	var s string
	tb.eval("reading the heading", `(document.querySelector('main h1') || {}).textContent || ''`, &s)
	return s
}

// cookie returns the value of the tab's cookie name for the console.
func (tb *tab) cookie(name string) string {
	tb.t.Helper()
	var cookies []*network.Cookie
	tb.run("reading cookies", chromedp.ActionFunc(func(ctx context.Context) error {
		var err error
		cookies, err = network.GetCookies().WithURLs([]string{tb.console}).Do(ctx)
		return err
	}))
	for _, c := range cookies {
		if c.Name == name {
			return c.Value
		}
	}
	tb.t.Fatalf("no cookie %s", name)
	return ""
}

// setCookie sets a cookie of the console (HttpOnly, SameSite=Strict, the
// mount's path, as the API sets its session cookie) in the tab's browser
// context.
func (tb *tab) setCookie(name, value string) {
	tb.t.Helper()
	tb.run("setting a cookie", chromedp.ActionFunc(func(ctx context.Context) error {
		return network.SetCookie(name, value).WithURL(tb.console).WithPath("/admin/").
			WithHTTPOnly(true).WithSameSite(network.CookieSameSiteStrict).Do(ctx)
	}))
}

// location is the page's address.
func (tb *tab) location() string {
	tb.t.Helper()
	var s string
	tb.eval("reading the address", `location.href`, &s)
	return s
}

// status waits until the role=status region says text.
func (tb *tab) status(text string) {
	tb.t.Helper()
	tb.waitFor("the announcement "+text, fmt.Sprintf(`(document.getElementById('status') || {}).textContent === %s`, js(text)))
}

// key presses a key (such as "\t" or kb.Escape) with modifiers.
func (tb *tab) key(k string, opts ...chromedp.KeyOption) {
	tb.t.Helper()
	tb.run("pressing a key", chromedp.KeyEvent(k, opts...))
}

// focused describes the focused element: its text or label.
func (tb *tab) focused() string {
	tb.t.Helper()
	var s string
	tb.eval("reading the focus", `(() => { const e = document.activeElement; if (!e) return ''; const l = e.labels && e.labels[0]; return (l ? l.textContent : (e.getAttribute('aria-label') || e.textContent || e.tagName)).replace(/\s+/g, ' ').trim(); })()`, &s)
	return s
}

// screenshot writes the viewport as docs/<name>.png when the environment
// variable APIUSERS_SCREENSHOTS names a directory (make screenshots).
func (tb *tab) screenshot(name string) {
	tb.t.Helper()
	dir := os.Getenv("APIUSERS_SCREENSHOTS")
	if dir == "" {
		return
	}
	tb.settle()
	var png []byte
	tb.run("screenshot "+name, chromedp.CaptureScreenshot(&png))
	if err := os.MkdirAll(dir, 0o755); err != nil {
		tb.t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, name+".png"), png, 0o644); err != nil {
		tb.t.Fatal(err)
	}
}

// axe-core, installed once per test binary.
var (
	axeOnce   sync.Once
	axeSource string
	axeErr    error
)

// axeVersion is the axe-core release the tests install.
const axeVersion = "4.14.1"

func loadAxe() (string, error) {
	axeOnce.Do(func() {
		dir, err := filepath.Abs(filepath.Join("testdata", "axe"))
		if err != nil {
			axeErr = err
			return
		}
		file := filepath.Join(dir, "node_modules", "axe-core", "axe.min.js")
		if b, err := os.ReadFile(file); err == nil && strings.Contains(string(b), axeVersion) {
			axeSource = string(b)
			return
		}
		npm, err := exec.LookPath("npm")
		if err != nil {
			axeErr = fmt.Errorf("npm not found: %w", err)
			return
		}
		if err := os.MkdirAll(dir, 0o755); err != nil {
			axeErr = err
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
		defer cancel()
		cmd := exec.CommandContext(ctx, npm, "install", "--no-audit", "--no-fund", "--no-save", "--ignore-scripts",
			"--prefix", dir, "axe-core@"+axeVersion)
		if out, err := cmd.CombinedOutput(); err != nil {
			axeErr = fmt.Errorf("npm install axe-core@%s: %v\n%s", axeVersion, err, out)
			return
		}
		b, err := os.ReadFile(file)
		if err != nil {
			axeErr = err
			return
		}
		axeSource = string(b)
	})
	return axeSource, axeErr
}

// axeResult is the part of axe.run's result the tests read.
type axeResult struct {
	ID     string `json:"id"`
	Impact string `json:"impact"`
	Help   string `json:"help"`
	Nodes  []struct {
		Target  []any  `json:"target"`
		Summary string `json:"failureSummary"`
	} `json:"nodes"`
}

var axeSkipLogged atomic.Bool

// axe checks the screen as it is (with any open dialog) and fails the test
// for every serious or critical violation. Without npm (no network), it
// says so once and checks nothing.
func (tb *tab) axe(screen string) {
	tb.t.Helper()
	src, err := loadAxe()
	if err != nil {
		if !axeSkipLogged.Swap(true) {
			tb.t.Logf("ACCESSIBILITY CHECKS SKIPPED: axe-core could not be installed from npm (%v)", err)
		}
		return
	}
	tb.settle()
	var loaded bool
	// Evaluated through the DevTools protocol, which the page's CSP does
	// not govern; the console itself still runs under its CSP.
	tb.eval("loading axe", `typeof axe !== 'undefined' || (function(){`+src+`; return true;})()`, &loaded)
	var violations []axeResult
	tb.eval("running axe on "+screen, `axe.run(document, {
		runOnly: {type: 'tag', values: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa', 'wcag22aa', 'best-practice']},
		resultTypes: ['violations'],
	}).then((r) => r.violations.map((v) => ({id: v.id, impact: v.impact, help: v.help, nodes: v.nodes.map((n) => ({target: n.target, failureSummary: n.failureSummary}))})))`, &violations)
	for _, v := range violations {
		if v.Impact != "serious" && v.Impact != "critical" {
			continue
		}
		var where []string
		for _, n := range v.Nodes {
			where = append(where, fmt.Sprint(n.Target)+": "+n.Summary)
		}
		tb.t.Errorf("accessibility on %s: %s (%s): %s\n  %s", screen, v.ID, v.Impact, v.Help, strings.Join(where, "\n  "))
	}
}
