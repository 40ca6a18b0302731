// ui.js -- small DOM helpers shared by the views: element building, tables,
// error boxes, number formats and the SVG charts.
//
// Everything the server sends is put on the page as text (textContent,
// attribute values), never as HTML, so a model name or an audit reason
// cannot inject markup; together with the Content-Security-Policy (no inline
// script) that closes the usual cross-site scripting paths.

const SVG = 'http://www.w3.org/2000/svg';

// el('button', {class: 'x', onclick: fn}, 'text', child, ...): an element
// with attributes ('on...' keys become listeners, false/null are left out)
// and children (strings become text nodes; null and false are skipped).
export function el(tag, attrs, ...children) {
  const e = document.createElement(tag);
  setAttrs(e, attrs);
  append(e, children);
  return e;
}

function setAttrs(e, attrs) {
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k.startsWith('on')) e.addEventListener(k.slice(2), v);
    else e.setAttribute(k, v === true ? '' : String(v));
  }
}

function append(e, children) {
  for (const c of children.flat()) {
    if (c === null || c === undefined || c === false) continue;
    e.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
}

export function svg(tag, attrs, ...children) {
  const e = document.createElementNS(SVG, tag);
  setAttrs(e, attrs);
  append(e, children);
  return e;
}

export function clear(node) {
  while (node.firstChild) node.removeChild(node.firstChild);
  return node;
}

// A table from column definitions [{head, cell: row => text or Node}].
export function table(cols, rows, attrs) {
  return el('table', attrs || {},
    el('thead', null, el('tr', null, cols.map((c) => el('th', null, c.head)))),
    el('tbody', null, rows.map((r) => el('tr', null, cols.map((c) => el('td', null, c.cell(r)))))));
}

// The box that shows a failed call: status, error name and the server's
// message, e.g. "403 forbidden: role 'analyst' may not models:write".
export function errorBox(err) {
  const text = err && err.status !== undefined ? err.toString() : String(err);
  return el('p', { class: 'error', role: 'alert' }, text);
}

export function pct(p, digits = 1) {
  return typeof p === 'number' && isFinite(p) ? (p * 100).toFixed(digits) + '%' : '-';
}

export function num(v, digits = 4) {
  return typeof v === 'number' && isFinite(v) ? String(Number(v.toFixed(digits))) : '-';
}

export function when(iso) {
  return typeof iso === 'string' ? iso.replace('T', ' ').replace(/\.\d+Z$/, 'Z') : '-';
}

export function badge(text, kind) {
  return el('span', { class: 'badge' + (kind ? ' ' + kind : '') }, text);
}

// Horizontal bars: one row per item {label, value, note, alert}. 'max' is
// the value of a full bar; 'marks' draws dashed lines at given values (the
// warning and alert thresholds).
export function barChart(items, opts = {}) {
  const rowH = 20;
  const labelW = opts.labelWidth || 150;
  const barW = 320;
  const max = opts.max || Math.max(1e-9, ...items.map((i) => i.value || 0));
  const h = items.length * rowH + 24;
  const s = svg('svg', {
    class: 'chart', viewBox: `0 0 ${labelW + barW + 90} ${h}`, role: 'img',
    'aria-label': opts.title || 'bar chart',
  });
  items.forEach((it, i) => {
    const y = i * rowH + 4;
    const w = Math.max(1, (Math.min(it.value || 0, max) / max) * barW);
    s.append(
      svg('text', { x: labelW - 6, y: y + 13, 'text-anchor': 'end', class: 'lbl' }, it.label),
      svg('rect', { x: labelW, y, width: w, height: rowH - 6,
        class: it.alert ? 'bar alert' : it.warn ? 'bar warn' : 'bar' }),
      svg('text', { x: labelW + w + 4, y: y + 13, class: 'val' }, it.note || num(it.value, 3)));
  });
  for (const m of opts.marks || []) {
    const x = labelW + (Math.min(m.value, max) / max) * barW;
    s.append(svg('line', { x1: x, x2: x, y1: 0, y2: h - 20, class: 'mark' }),
      svg('text', { x, y: h - 6, 'text-anchor': 'middle', class: 'val' }, m.label));
  }
  return s;
}

// A line chart of series [{name, points: [[x, y], ...], cls}] over a shared
// x axis; 'xLabel' formats an x value for the two end ticks.
export function lineChart(series, opts = {}) {
  const W = 520;
  const H = 180;
  const pad = 44;
  const pts = series.flatMap((s) => s.points);
  if (pts.length === 0) return el('p', { class: 'note' }, 'no points yet');
  const xs = pts.map((p) => p[0]);
  const ys = pts.map((p) => p[1]);
  const x0 = Math.min(...xs);
  const x1 = Math.max(...xs) === x0 ? x0 + 1 : Math.max(...xs);
  const y0 = opts.yMin !== undefined ? opts.yMin : Math.min(...ys);
  let y1 = opts.yMax !== undefined ? opts.yMax : Math.max(...ys);
  if (y1 === y0) y1 = y0 + 1;
  const X = (x) => pad + ((x - x0) / (x1 - x0)) * (W - 2 * pad);
  const Y = (y) => H - pad + ((y0 - y) / (y1 - y0)) * (H - 2 * pad);
  const s = svg('svg', { class: 'chart', viewBox: `0 0 ${W} ${H}`, role: 'img',
    'aria-label': opts.title || 'line chart' });
  s.append(svg('line', { x1: pad, x2: W - pad, y1: H - pad, y2: H - pad, class: 'axis' }),
    svg('line', { x1: pad, x2: pad, y1: pad / 2, y2: H - pad, class: 'axis' }),
    svg('text', { x: pad - 4, y: Y(y1) + 4, 'text-anchor': 'end', class: 'val' }, num(y1, 3)),
    svg('text', { x: pad - 4, y: Y(y0) + 4, 'text-anchor': 'end', class: 'val' }, num(y0, 3)));
  const fx = opts.xLabel || ((x) => String(x));
  s.append(svg('text', { x: pad, y: H - pad + 16, class: 'val' }, fx(x0)),
    svg('text', { x: W - pad, y: H - pad + 16, 'text-anchor': 'end', class: 'val' }, fx(x1)));
  series.forEach((se, i) => {
    const d = se.points.map((p, j) => (j ? 'L' : 'M') + X(p[0]).toFixed(1) + ' ' + Y(p[1]).toFixed(1)).join(' ');
    s.append(svg('path', { d, class: 'line ' + (se.cls || 's' + i) }));
    for (const p of se.points) s.append(svg('circle', { cx: X(p[0]), cy: Y(p[1]), r: 2.5, class: 'dot ' + (se.cls || 's' + i) }));
    s.append(svg('text', { x: W - pad, y: pad / 2 + 12 * i, 'text-anchor': 'end', class: 'legend ' + (se.cls || 's' + i) }, se.name));
  });
  return s;
}

// CSV text from rows of values: RFC 4180 quoting where a value needs it.
export function toCsv(header, rows) {
  const q = (v) => {
    const s = v === null || v === undefined ? '' : String(v);
    return /[",\r\n]/.test(s) ? '"' + s.replace(/"/g, '""') + '"' : s;
  };
  return [header, ...rows].map((r) => r.map(q).join(',')).join('\r\n') + '\r\n';
}
