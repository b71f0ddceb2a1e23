// Numbers, durations and times for people. Times show in UTC, as the ledger's days, weeks and
// months and the invoices' periods are UTC.

const INT = new Intl.NumberFormat("en-US", { maximumFractionDigits: 0 });

export function int(n) {
  return n === null || n === undefined || Number.isNaN(n) ? "—" : INT.format(n);
}

export function dec(n, digits = 1) {
  if (n === null || n === undefined || Number.isNaN(n)) return "—";
  return Number(n).toLocaleString("en-US", { minimumFractionDigits: digits, maximumFractionDigits: digits });
}

// 1234 -> "1.2K", 5_600_000 -> "5.6M" (axes, secondary lines; never the exact KPI figure)
export function compact(n) {
  if (n === null || n === undefined || Number.isNaN(n)) return "—";
  const a = Math.abs(n);
  const one = (v) => v.toFixed(1).replace(/\.0$/, "");
  if (a >= 1e12) return one(n / 1e12) + "T";
  if (a >= 1e9) return one(n / 1e9) + "B";
  if (a >= 1e6) return one(n / 1e6) + "M";
  if (a >= 1e4) return one(n / 1e3) + "K";
  if (a >= 100 || Number.isInteger(n)) return INT.format(n);
  return n.toFixed(a >= 1 ? 1 : 2);
}

export function pct(fraction, digits = 1) {
  if (fraction === null || fraction === undefined || Number.isNaN(fraction)) return "—";
  if (Math.abs(fraction) >= 10) return INT.format(Math.round(fraction * 100)) + "%";
  return (fraction * 100).toFixed(digits) + "%";
}

export function ms(v) {
  if (v === null || v === undefined || Number.isNaN(v)) return "—";
  return v >= 1000 ? (v / 1000).toFixed(2) + " s" : Math.round(v) + " ms";
}

export function seconds(s) {
  if (s === null || s === undefined) return "—";
  if (s < 60) return `${Math.round(s)} s`;
  if (s < 3600) return `${Math.round(s / 60)} min`;
  if (s < 86400) return `${(s / 3600).toFixed(1).replace(/\.0$/, "")} h`;
  return `${(s / 86400).toFixed(1).replace(/\.0$/, "")} d`;
}

export function gb(v) {
  return v === null || v === undefined ? "—" : `${dec(v, v >= 100 ? 0 : 1)} GB`;
}

// API times: ISO strings (with or without a zone: none means UTC) or unix seconds.
export function toDate(v) {
  if (v === null || v === undefined || v === "") return null;
  if (typeof v === "number") return new Date(v * 1000);
  const s = String(v);
  const zoned = /([zZ]|[+-]\d\d:?\d\d)$/.test(s);
  const d = new Date(zoned ? s : s + "Z");
  return Number.isNaN(d.getTime()) ? null : d;
}

export const unix = (v) => {
  const d = toDate(v);
  return d ? d.getTime() / 1000 : null;
};

const pad = (n) => String(n).padStart(2, "0");
const MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];

// "2026-12-06 23:10" (UTC)
export function dateTime(v, withSeconds = false) {
  const d = toDate(v);
  if (!d) return "—";
  const base = `${d.getUTCFullYear()}-${pad(d.getUTCMonth() + 1)}-${pad(d.getUTCDate())} ${pad(d.getUTCHours())}:${pad(d.getUTCMinutes())}`;
  return withSeconds ? `${base}:${pad(d.getUTCSeconds())}` : base;
}

export function date(v) {
  const d = toDate(v);
  return d ? `${d.getUTCFullYear()}-${pad(d.getUTCMonth() + 1)}-${pad(d.getUTCDate())}` : "—";
}

// "Nov 2026" for an invoice period
export function month(v) {
  const d = toDate(v);
  return d ? `${MONTHS[d.getUTCMonth()]} ${d.getUTCFullYear()}` : "—";
}

// "3 min ago", "in 20 d"
export function relative(v, now = Date.now()) {
  const d = toDate(v);
  if (!d) return "—";
  const s = (d.getTime() - now) / 1000;
  const text = seconds(Math.abs(s));
  if (Math.abs(s) < 45) return "just now";
  return s < 0 ? `${text} ago` : `in ${text}`;
}

// For <input type="datetime-local"> in UTC
export function toLocalInput(unixSeconds) {
  const d = new Date(unixSeconds * 1000);
  return `${d.getUTCFullYear()}-${pad(d.getUTCMonth() + 1)}-${pad(d.getUTCDate())}T${pad(d.getUTCHours())}:${pad(d.getUTCMinutes())}`;
}

export function fromLocalInput(text) {
  if (!text) return null;
  const t = Date.parse(text + ":00Z");
  return Number.isNaN(t) ? null : t / 1000;
}

export function shortId(id, keep = 8) {
  if (!id) return "—";
  const i = id.indexOf("_");
  const body = i >= 0 ? id.slice(i + 1) : id;
  return body.length > keep ? `${id.slice(0, i + 1)}${body.slice(0, keep)}…` : id;
}

export function plural(n, one, many = one + "s") {
  return `${int(n)} ${n === 1 ? one : many}`;
}

// Energy per token: joules, or millijoules when small
export function joules(j) {
  if (j === null || j === undefined || Number.isNaN(j)) return "—";
  return j >= 0.1 ? `${dec(j, 2)} J` : `${dec(j * 1000, j >= 0.001 ? 1 : 3)} mJ`;
}
