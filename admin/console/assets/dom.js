// Small DOM helpers. Text always goes in as text nodes, never as HTML, so
// nothing the API returns can become markup; handlers are attached as
// listeners (the Content-Security-Policy forbids inline script).

let seq = 0;

// uid returns an id unique in the page, for label/for and aria-* links.
export function uid(prefix = 'c') {
  seq += 1;
  return `${prefix}-${seq}`;
}

// Properties set as DOM properties rather than attributes.
const PROPS = new Set(['value', 'checked', 'indeterminate', 'selected']);

// h makes an element: h('button', {type: 'button', onclick: f}, 'Save').
// Attributes that are null, undefined or false are left out; true sets an
// empty attribute. Children may be strings, nodes, arrays or null.
export function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  if (attrs) {
    for (const [k, v] of Object.entries(attrs)) {
      if (v == null || v === false) continue;
      if (k === 'class') el.className = v;
      else if (k.startsWith('on') && typeof v === 'function') el.addEventListener(k.slice(2), v);
      else if (PROPS.has(k)) el[k] = v;
      else el.setAttribute(k, v === true ? '' : String(v));
    }
  }
  append(el, children);
  return el;
}

// append adds children (strings, nodes, arrays, null) to el.
export function append(el, children) {
  for (const c of children) {
    if (c == null || c === false) continue;
    if (Array.isArray(c)) append(el, c);
    else if (c instanceof Node) el.append(c);
    else el.append(document.createTextNode(String(c)));
  }
  return el;
}

// replace empties el and adds children.
export function replace(el, ...children) {
  el.replaceChildren();
  return append(el, children);
}

// announce says text through the page's role=status region, so screen
// readers read it ("Copied", "Saved") without moving the focus.
export function announce(text) {
  const region = document.getElementById('status');
  if (!region) return;
  region.textContent = '';
  // A changed text is announced; setting it after a tick makes the same
  // text twice in a row count as a change too.
  setTimeout(() => { region.textContent = text; }, 30);
  clearTimeout(announce.timer);
  announce.timer = setTimeout(() => { region.textContent = ''; }, 6000);
}

// focusables lists the elements of root the keyboard can reach.
export function focusables(root) {
  const sel = 'a[href], button:not([disabled]), input:not([disabled]):not([type=hidden]), select:not([disabled]), textarea:not([disabled]), [tabindex]:not([tabindex="-1"])';
  return [...root.querySelectorAll(sel)].filter((el) => !el.closest('[hidden]') && el.getClientRects().length > 0);
}
