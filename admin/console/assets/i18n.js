// Languages and time zones. Every label comes from a strings table per
// language (i18n/<lang>.json, the same keys in each); every time is shown
// in the person's time zone. The API itself speaks UTC (RFC 3339).

import { h } from './dom.js';

// LANGUAGES are the languages the console speaks, with their own names.
export const LANGUAGES = [
  { tag: 'en', name: 'English' },
  { tag: 'de', name: 'Deutsch' },
];

const tables = {};
let lang = 'en';
let zone = 'UTC';
let table = {};

// pickLanguage maps a BCP 47 tag to a language the console speaks.
export function pickLanguage(tag) {
  const base = String(tag || '').toLowerCase().split(/[-_]/)[0];
  return LANGUAGES.some((l) => l.tag === base) ? base : 'en';
}

// validZone returns tz when the browser knows it, else the browser's own.
export function validZone(tz) {
  if (tz) {
    try {
      new Intl.DateTimeFormat('en', { timeZone: tz });
      return tz;
    } catch {
      // fall through
    }
  }
  return browserZone();
}

// browserZone is the time zone the browser runs in.
export function browserZone() {
  return Intl.DateTimeFormat().resolvedOptions().timeZone || 'UTC';
}

// setLocale loads the strings of language tag and uses time zone tz.
export async function setLocale(tag, tz) {
  const l = pickLanguage(tag);
  if (!tables[l]) {
    const res = await fetch(new URL(`i18n/${l}.json`, import.meta.url));
    if (!res.ok) throw new Error(`loading strings ${l}: ${res.status}`);
    tables[l] = await res.json();
  }
  lang = l;
  table = tables[l];
  zone = validZone(tz);
  document.documentElement.lang = l;
}

export function language() { return lang; }
export function timeZone() { return zone; }

// t returns the label key in the current language, with {name}
// placeholders filled from vars.
export function t(key, vars) {
  let s = table[key];
  if (s === undefined) s = key;
  if (vars) s = s.replace(/\{(\w+)\}/g, (m, k) => (vars[k] === undefined ? m : String(vars[k])));
  return s;
}

// has reports whether the table has key (for labels of open sets such as
// permissions, which may be names an operator invented).
export function has(key) { return table[key] !== undefined; }

function formatter(opts) {
  return new Intl.DateTimeFormat(lang, { timeZone: zone, ...opts });
}

// formatTime renders an RFC 3339 time in the person's language and zone,
// with a 24-hour clock.
export function formatTime(iso) {
  if (!iso) return '';
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return iso;
  return formatter({
    year: 'numeric', month: 'short', day: 'numeric',
    hour: '2-digit', minute: '2-digit', hourCycle: 'h23',
  }).format(d);
}

// timeEl is a <time> element: the text in the person's zone, the machine
// value (and the tooltip) in UTC as the API gave it.
export function timeEl(iso) {
  if (!iso) return h('span', { class: 'muted' }, t('common.never'));
  return h('time', { datetime: iso, title: iso }, formatTime(iso));
}

// zoneOffset returns the offset of zone tz from UTC at instant ms, in ms.
function zoneOffset(ms, tz) {
  const parts = new Intl.DateTimeFormat('en-US', {
    timeZone: tz, hourCycle: 'h23',
    year: 'numeric', month: '2-digit', day: '2-digit',
    hour: '2-digit', minute: '2-digit', second: '2-digit',
  }).formatToParts(new Date(ms));
  const n = (type) => Number(parts.find((p) => p.type === type).value);
  const asUTC = Date.UTC(n('year'), n('month') - 1, n('day'), n('hour'), n('minute'), n('second'));
  return asUTC - Math.floor(ms / 1000) * 1000;
}

// localToISO reads a datetime-local value ("2025-01-31T12:00") as a wall
// time in the person's zone and returns the instant as RFC 3339 UTC.
export function localToISO(value) {
  if (!value) return '';
  const m = /^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2})(?::(\d{2}))?$/.exec(value);
  if (!m) return '';
  const wall = Date.UTC(+m[1], +m[2] - 1, +m[3], +m[4], +m[5], +(m[6] || 0));
  let ms = wall - zoneOffset(wall, zone);
  ms = wall - zoneOffset(ms, zone); // once more, for instants near a change
  return new Date(ms).toISOString().replace('.000Z', 'Z');
}

// timeZones lists the IANA zones the browser knows, UTC first.
export function timeZones() {
  let zones = [];
  try {
    zones = Intl.supportedValuesOf('timeZone');
  } catch {
    zones = [];
  }
  return ['UTC', ...zones.filter((z) => z !== 'UTC')];
}
