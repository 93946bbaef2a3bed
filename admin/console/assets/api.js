// The admin API client. The console is served at the API's mount, so every
// API path is relative to the page's directory (…/admin/ → …/admin/me).
// The browser sends the session cookie itself; nothing here stores a key,
// a password or a token.

// base is the mount: the directory of the page (…/admin/ for …/admin/accept).
export const base = new URL('.', window.location.href);

// ApiError is a problem (RFC 9457) the API answered, or a network failure
// (status 0).
export class ApiError extends Error {
  constructor(status, problem, retryAfter) {
    super((problem && (problem.detail || problem.title)) || `HTTP ${status}`);
    this.status = status;
    this.field = problem && problem.field;
    this.retryAfter = retryAfter;
  }
}

// path joins segments into a relative API path, escaping each one.
export function path(...segments) {
  return segments.map((s) => encodeURIComponent(s)).join('/');
}

let onUnauthorized = null;

// whenUnauthorized sets what happens when the API answers 401 (the session
// ended): the app shows the sign-in screen.
export function whenUnauthorized(fn) { onUnauthorized = fn; }

// api sends one request. query is an object of parameters (empty values
// are left out); version, when given, is sent as If-Match. It resolves to
// the JSON body (null for 204) and rejects with an ApiError.
export async function api(method, rel, { body, query, version, quiet401 } = {}) {
  const url = new URL(rel, base);
  if (query) {
    for (const [k, v] of Object.entries(query)) {
      if (v !== undefined && v !== null && v !== '') url.searchParams.set(k, String(v));
    }
  }
  const headers = { Accept: 'application/json' };
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  if (version !== undefined) headers['If-Match'] = `"${version}"`;
  pending(1);
  try {
    return await send(method, url, headers, body, quiet401);
  } finally {
    pending(-1);
  }
}

// pending counts the requests in flight on the page's root element
// (data-pending), so that anyone waiting for the console to settle (the
// browser tests) can tell.
let inFlight = 0;
function pending(d) {
  inFlight += d;
  document.documentElement.dataset.pending = String(inFlight);
}

async function send(method, url, headers, body, quiet401) {
  let res;
  try {
    res = await fetch(url, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      credentials: 'same-origin',
      cache: 'no-store',
    });
  } catch {
    throw new ApiError(0, null);
  }
  if (res.status === 204) return null;
  const type = res.headers.get('Content-Type') || '';
  let data = null;
  if (type.includes('json')) {
    try {
      data = await res.json();
    } catch {
      data = null;
    }
  }
  if (!res.ok) {
    const err = new ApiError(res.status, data, Number(res.headers.get('Retry-After')) || 0);
    if (res.status === 401 && !quiet401 && onUnauthorized) onUnauthorized(err);
    throw err;
  }
  return data;
}

// listAll follows next_cursor until the list ends or max items are read
// (for small lists such as teams).
export async function listAll(rel, query = {}, max = 2000) {
  const items = [];
  let cursor = '';
  do {
    const page = await api('GET', rel, { query: { ...query, limit: 500, cursor } });
    items.push(...page.items);
    cursor = page.next_cursor || '';
  } while (cursor && items.length < max);
  return items;
}
