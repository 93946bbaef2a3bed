// The console's entry point: who is signed in, in which workspace and
// language, the frame (header, the Administration navigation, the main
// area) and the screen the URL fragment names. Pages outside the fragment
// routing are …/accept and …/reset (links from mails).

import { h, replace } from './dom.js';
import { api, base, whenUnauthorized, ApiError } from './api.js';
import { setLocale, t } from './i18n.js';
import { Caller } from './rights.js';
import { errorText, alertBox } from './dialog.js';
import { select } from './widgets.js';
import * as signin from './screens/signin.js';
import * as users from './screens/users.js';
import * as user from './screens/user.js';
import * as members from './screens/members.js';
import * as teams from './screens/teams.js';
import * as messages from './screens/messages.js';
import * as audit from './screens/audit.js';
import * as profile from './screens/profile.js';

const root = document.getElementById('app');

// session is what the screens share: the caller in the workspace shown,
// the workspaces to switch between, the person's account.
export const session = {
  caller: null,
  ws: '',
  workspaces: [], // [{id, name}]
  memberships: [],
};

// parseRoute reads the fragment: #/w/<ws>/<screen>/<id>?<query>.
function parseRoute() {
  const raw = window.location.hash.replace(/^#/, '') || '/';
  const [p, q] = raw.split('?');
  const parts = p.split('/').filter(Boolean).map(decodeURIComponent);
  const query = new URLSearchParams(q || '');
  if (parts[0] === 'w' && parts.length >= 2) return { ws: parts[1], parts: parts.slice(2), query };
  return { ws: '', parts, query };
}

// href is the fragment of a screen in workspace ws.
export function href(ws, ...parts) {
  return `#/w/${[ws, ...parts].map(encodeURIComponent).join('/')}`;
}

// go moves to a fragment (and renders it).
export function go(fragment) {
  if (window.location.hash === fragment) render();
  else window.location.hash = fragment;
}

// home is the first screen a caller may see in ws.
function home(c, ws) {
  if (c.mayReadUsers) return href(ws, 'users');
  if (c.mayReadMessages) return href(ws, 'messages');
  return '#/profile';
}

async function loadMe(ws) {
  const me = await api('GET', 'me', { query: ws ? { workspace: ws } : undefined, quiet401: true });
  return me;
}

// signIn loads the caller (after sign-in, or on start with a session).
async function startSession() {
  const me = await loadMe('');
  session.memberships = (me.memberships || []).filter((m) => m.status === 'active');
  session.caller = new Caller(me);
  await applyLocale();
  const ws = new Map();
  for (const m of session.memberships) ws.set(m.workspace, m.workspace_name || m.workspace);
  ws.set(session.caller.workspace, ws.get(session.caller.workspace) || session.caller.workspace);
  try {
    const list = await api('GET', 'workspaces', { query: { limit: 500 } });
    for (const w of list.items) ws.set(w.id, w.name || w.id);
  } catch {
    // the workspaces of the memberships are enough
  }
  session.workspaces = [...ws].map(([id, name]) => ({ id, name })).sort((a, b) => a.id.localeCompare(b.id));
}

// applyLocale sets language and time zone from the account (a person) or
// the user.
export async function applyLocale() {
  const c = session.caller;
  const src = (c && (c.account || c.user)) || {};
  await setLocale(src.language || navigator.language, src.timezone);
}

// reloadCaller fetches GET /me again (after the profile changed, or when
// the workspace changes for a person with several memberships).
export async function reloadCaller(ws = session.ws) {
  const inMemberships = session.memberships.some((m) => m.workspace === ws);
  const me = await loadMe(inMemberships ? ws : '');
  session.caller = new Caller(me);
  await applyLocale();
}

function frame(c, ws, active) {
  const nav = [];
  const item = (key, frag, name) => h('li', null, h('a', { href: frag, 'aria-current': active === name ? 'page' : null }, t(key)));
  if (c.mayReadUsers || c.mayReadTeams) nav.push(item('nav.members', c.mayReadUsers ? href(ws, 'members') : href(ws, 'teams'), 'members'));
  if (c.mayReadMessages) nav.push(item('nav.messages', href(ws, 'messages'), 'messages'));
  if (c.mayReadAudit) nav.push(item('nav.audit', href(ws, 'audit'), 'audit'));

  const wsSelect = select(session.workspaces.map((w) => ({ value: w.id, label: w.name === w.id ? w.id : `${w.name} (${w.id})` })), ws, { id: 'ws-switch' });
  wsSelect.addEventListener('change', () => {
    const r = parseRoute();
    go(href(wsSelect.value, r.parts[0] || 'users'));
  });
  const who = (c.account && (c.account.name || c.account.email)) || c.user.username;
  const signOut = c.account ? h('button', {
    type: 'button',
    class: 'link',
    onclick: async () => {
      try {
        await api('POST', 'logout', { quiet401: true });
      } catch {
        // signed out either way
      }
      window.location.replace(new URL('.', base).href);
    },
  }, t('nav.sign_out')) : null;

  const main = h('main', { id: 'main', tabindex: '-1' });
  const page = h('div', { class: 'frame' },
    h('a', { class: 'skip', href: '#main', onclick: (ev) => { ev.preventDefault(); main.focus(); } }, t('nav.skip')),
    h('header', { class: 'top' },
      h('a', { class: 'brand', href: home(c, ws) }, 'apiusers'),
      session.workspaces.length > 0 ? h('div', { class: 'ws' }, h('label', { for: 'ws-switch' }, t('nav.workspace')), wsSelect) : null,
      h('nav', { class: 'account', 'aria-label': t('nav.account') },
        h('a', { href: '#/profile', 'aria-current': active === 'profile' ? 'page' : null }, t('nav.profile'), ': ', who),
        signOut)),
    h('div', { class: 'body' },
      h('nav', { class: 'side', 'aria-labelledby': 'nav-admin' },
        h('h2', { id: 'nav-admin' }, t('nav.administration')),
        nav.length ? h('ul', null, nav) : h('p', { class: 'muted' }, t('nav.nothing'))),
      main));
  replace(root, page);
  return main;
}

// Screens by the first part of the route.
const screens = {
  users: (ctx) => (ctx.parts[1] ? user.render(ctx) : users.render(ctx)),
  members: (ctx) => members.render(ctx),
  teams: (ctx) => (ctx.parts[1] ? teams.renderTeam(ctx) : teams.render(ctx)),
  messages: (ctx) => messages.render(ctx),
  audit: (ctx) => audit.render(ctx),
};

const areaOf = { users: 'members', members: 'members', teams: 'members', messages: 'messages', audit: 'audit' };

// allowed reports whether the caller may see a screen at all (the others
// are not offered; opening one by its address leads home).
const allowed = {
  users: (c) => c.mayReadUsers,
  members: (c) => c.mayReadUsers,
  teams: (c) => c.mayReadTeams,
  messages: (c) => c.mayReadMessages,
  audit: (c) => c.mayReadAudit,
};

let renderSeq = 0;

// render draws the screen of the current fragment.
export async function render() {
  const seq = ++renderSeq;
  const r = parseRoute();
  if (!session.caller) {
    if (r.parts[0] === 'forgot') return signin.renderForgot(root);
    return signin.renderSignIn(root, { onSignedIn: afterSignIn });
  }
  const c0 = session.caller;
  if (r.parts[0] === 'profile') {
    const main = frame(c0, session.ws || c0.workspace, 'profile');
    return runScreen(main, () => profile.render({ main, caller: c0, session, reload: afterProfileChange }), seq);
  }
  let ws = r.ws;
  if (!ws || !screens[r.parts[0]]) {
    ws = ws || session.ws || c0.workspace;
    window.location.replace(home(c0, ws));
    return undefined;
  }
  if (ws !== session.ws) {
    session.ws = ws;
    if (session.memberships.some((m) => m.workspace === ws) && ws !== c0.workspace) await reloadCaller(ws);
    if (seq !== renderSeq) return undefined;
  }
  const c = session.caller;
  if (!allowed[r.parts[0]](c)) {
    const to = home(c, ws);
    if (to !== window.location.hash) {
      window.location.replace(to);
      return undefined;
    }
  }
  const main = frame(c, ws, areaOf[r.parts[0]]);
  const ctx = { main, caller: c, ws, parts: r.parts, query: r.query, session };
  return runScreen(main, () => screens[r.parts[0]](ctx), seq);
}

async function runScreen(main, fn, seq) {
  try {
    await fn();
  } catch (e) {
    if (seq !== renderSeq) return;
    if (e instanceof ApiError && e.status === 401) return;
    const box = alertBox();
    box.show(errorText(e));
    main.append(box);
  }
  if (seq !== renderSeq) return;
  const h1 = main.querySelector('h1');
  if (h1) {
    h1.tabIndex = -1;
    h1.focus({ preventScroll: false });
    document.title = `${h1.textContent} – apiusers`;
  }
}

async function afterSignIn() {
  await startSession();
  const r = parseRoute();
  if (!r.ws && r.parts[0] !== 'profile') window.location.hash = home(session.caller, session.caller.workspace);
  await render();
}

async function afterProfileChange() {
  await reloadCaller(session.ws || session.caller.workspace);
  await render();
}

async function main() {
  await setLocale(navigator.language);
  const page = window.location.pathname.slice(base.pathname.length);
  if (page === 'accept' || page === 'reset') {
    // The one-time token leaves the address bar (and the history) at once.
    const token = new URLSearchParams(window.location.search).get('token') || '';
    window.history.replaceState(null, '', window.location.pathname);
    let signedIn = null;
    try {
      signedIn = await loadMe('');
    } catch {
      signedIn = null;
    }
    if (signedIn) {
      const src = signedIn.account || signedIn.user || {};
      await setLocale(src.language || navigator.language, src.timezone);
    }
    const done = () => window.location.replace(new URL('.', base).href);
    if (page === 'accept') return signin.renderAccept(root, { token, signedIn, done });
    return signin.renderReset(root, { token, done });
  }
  whenUnauthorized(() => {
    if (!session.caller) return;
    session.caller = null;
    render();
  });
  window.addEventListener('hashchange', () => render());
  try {
    await startSession();
  } catch (e) {
    if (!(e instanceof ApiError) || e.status !== 401) {
      const box = alertBox();
      box.show(errorText(e));
      replace(root, h('main', { id: 'main' }, h('h1', null, 'apiusers'), box));
      return undefined;
    }
    session.caller = null;
  }
  return render();
}

main();
