// Money arrives as exact decimal strings ("0.006905", "500.000000"). Sums are done on BigInt
// units, never on floats; Number() is used only for ratios and chart heights.

const SCALE = 12; // digits kept after the point: pico-units, finer than any API amount

const SYMBOLS = { USD: "$", EUR: "€", GBP: "£", CNY: "¥", JPY: "¥", INR: "₹", KRW: "₩" };

export function toUnits(text) {
  const s = String(text ?? "0").trim();
  const m = /^(-)?(\d*)(?:\.(\d*))?$/.exec(s);
  if (!m) throw new Error(`not a decimal amount: ${s}`);
  const frac = (m[3] || "").slice(0, SCALE).padEnd(SCALE, "0");
  const units = BigInt(m[2] || "0") * 10n ** BigInt(SCALE) + BigInt(frac || "0");
  return m[1] ? -units : units;
}

export function fromUnits(units, places = 6) {
  const neg = units < 0n;
  let abs = neg ? -units : units;
  const base = 10n ** BigInt(SCALE);
  const whole = abs / base;
  const frac = (abs % base).toString().padStart(SCALE, "0").slice(0, places);
  return (neg ? "-" : "") + whole.toString() + (places ? "." + frac : "");
}

function placesOf(text) {
  const i = String(text).indexOf(".");
  return i < 0 ? 0 : String(text).length - i - 1;
}

// Exact sum of decimal strings, as a decimal string with the most places any term had.
export function sum(values) {
  let total = 0n;
  let places = 2;
  for (const v of values) {
    if (v === null || v === undefined || v === "") continue;
    total += toUnits(v);
    places = Math.max(places, Math.min(placesOf(v), SCALE));
  }
  return fromUnits(total, places);
}

export function sub(a, b) {
  return fromUnits(toUnits(a) - toUnits(b), Math.max(2, placesOf(a), placesOf(b)));
}

export const isNegative = (v) => toUnits(v) < 0n;
export const isZero = (v) => toUnits(v) === 0n;

// Sums maps of currency -> amount ({"USD": "1.2"}), per currency.
export function sumByCurrency(maps) {
  const acc = {};
  for (const m of maps) {
    for (const [cur, amount] of Object.entries(m || {})) (acc[cur] ||= []).push(amount);
  }
  return Object.fromEntries(Object.entries(acc).map(([cur, list]) => [cur, sum(list)]));
}

// For ratios and chart heights only.
export const toNumber = (v) => (v === null || v === undefined ? null : Number(v));

export function ratio(a, b) {
  const d = toNumber(b);
  return d ? toNumber(a) / d : null;
}

function groupDigits(whole) {
  return whole.replace(/\B(?=(\d{3})+(?!\d))/g, ",");
}

// "$1,234.50", "$0.006905", "-$12.00", "CHF 3.10": exact; at least 2 places, trailing zeros
// past the second dropped, no rounding. {cents: true}: amounts of 1 or more rounded half-up to
// the cent (exactly, on the digits), for dense tables; put the exact figure in a title.
export function money(text, currency = "USD", { cents = false } = {}) {
  if (text === null || text === undefined || text === "") return "—";
  let s = String(text).trim();
  if (cents && Math.abs(Number(s)) >= 1) s = roundCents(s);
  const neg = s.startsWith("-");
  const [whole, frac = ""] = (neg ? s.slice(1) : s).split(".");
  let f = frac.replace(/0+$/, "");
  if (f.length < 2) f = f.padEnd(2, "0");
  const sym = SYMBOLS[currency];
  const body = groupDigits(whole || "0") + "." + f;
  return (neg ? "−" : "") + (sym ? sym + body : `${currency} ${body}`);
}

function roundCents(text) {
  const units = toUnits(text);
  const cent = 10n ** BigInt(SCALE - 2);
  const half = cent / 2n;
  const rounded = units < 0n ? -(((-units + half) / cent) * cent) : ((units + half) / cent) * cent;
  return fromUnits(rounded, 2);
}

// The same, shortened for a chart axis or a crowded tile line ("$12.3K"): display only.
export function moneyShort(n, currency = "USD") {
  if (n === null || n === undefined || Number.isNaN(n)) return "—";
  const sym = SYMBOLS[currency] ?? currency + " ";
  const a = Math.abs(n);
  const [v, suffix] =
    a >= 1e9 ? [n / 1e9, "B"] : a >= 1e6 ? [n / 1e6, "M"] : a >= 1e4 ? [n / 1e3, "K"] : [n, ""];
  if (n === 0) return sym + "0";
  const digits = suffix ? 1 : a >= 100 ? 0 : a >= 0.1 ? 2 : a >= 0.001 ? 4 : 6;
  return (n < 0 ? "−" : "") + sym + Math.abs(v).toFixed(digits) + suffix;
}

// {"USD": "1.2", "EUR": "3"} -> "$1.20 + €3.00"; {} -> "$0.00"
export function moneyMap(map, fallbackCurrency = "USD") {
  const entries = Object.entries(map || {});
  if (!entries.length) return money("0", fallbackCurrency);
  return entries.map(([cur, v]) => money(v, cur)).join(" + ");
}
