// monitor.js -- monitoring: data drift per feature (PSI bars against the
// warning and alert thresholds), the score's drift, decay from feedback
// labels and the label-free estimate, each the scheduler's latest result
// (GET /v1/monitor/{drift,decay,estimate}); the estimate's history
// (?history=N) as a line chart.

import { ApiError, call, can } from './api.js';
import { badge, barChart, clear, el, errorBox, lineChart, num, svg, table, when } from './ui.js';

// The latest result of 'kind', or null when there is none yet (404: the
// server's reason goes into 'why').
async function latest(kind, why) {
  try {
    return await call('GET', '/v1/monitor/' + kind);
  } catch (e) {
    if (e instanceof ApiError && e.status === 404) {
      why.push(e.message);
      return null;
    }
    throw e;
  }
}

function statusBadge(s) {
  return badge(s, s === 'ok' ? 'band-low' : s === 'drift' || s === 'decay' ? 'band-high' : 'band-medium');
}

function header(doc) {
  return el('p', { class: 'note' },
    `Computed ${when(doc.computed_at)} over ${doc.predictions} predictions of the last ${doc.window}` +
    ` (model v${doc.model_version}, ${num(doc.seconds, 3)} s).`);
}

// Reference and current shares per bin, side by side.
function binsChart(bins, title) {
  const n = bins.labels.length;
  const W = 520;
  const H = 150;
  const pad = 24;
  const max = Math.max(1e-9, ...bins.reference, ...bins.current);
  const bw = (W - 2 * pad) / n;
  const s = svg('svg', { class: 'chart', viewBox: `0 0 ${W} ${H}`, role: 'img', 'aria-label': title });
  bins.labels.forEach((l, i) => {
    const x = pad + i * bw;
    const hr = (bins.reference[i] / max) * (H - 2 * pad);
    const hc = (bins.current[i] / max) * (H - 2 * pad);
    s.append(svg('rect', { x: x + 2, y: H - pad - hr, width: bw / 2 - 2, height: hr, class: 'bar' },
      svg('title', null, `${l}: reference ${num(bins.reference[i], 3)}`)),
    svg('rect', { x: x + bw / 2, y: H - pad - hc, width: bw / 2 - 2, height: hc, class: 'bar warn' },
      svg('title', null, `${l}: current ${num(bins.current[i], 3)}`)));
  });
  s.append(svg('text', { x: pad, y: 12, class: 'legend s0' }, 'reference'),
    svg('text', { x: pad + 70, y: 12, class: 'legend s1' }, 'current'),
    svg('text', { x: pad, y: H - 8, class: 'val' }, 'low scores'),
    svg('text', { x: W - pad, y: H - 8, 'text-anchor': 'end', class: 'val' }, 'high scores'));
  return s;
}

function driftSection(doc) {
  const box = el('section', { id: 'mon-drift' }, el('h3', null, 'Data drift'));
  if (doc === null) {
    box.append(el('p', { class: 'note' }, 'No drift result yet.'));
    return box;
  }
  const r = doc.result;
  const cols = r.columns.slice().sort((a, b) => (b.psi || 0) - (a.psi || 0));
  box.append(header(doc),
    el('p', null, 'Status ', statusBadge(r.status),
      r.drifted.length ? ` drifted: ${r.drifted.join(', ')}` : ' no column drifted',
      ` (${r.rows} rows against ${r.reference_rows} reference rows)`),
    barChart(cols.map((c) => ({
      label: c.name, value: c.psi, alert: c.status === 'drift', warn: c.psi >= r.psi_warn,
    })), {
      title: 'PSI per feature', max: Math.max(r.psi_alert * 1.6, ...cols.map((c) => c.psi || 0)),
      marks: [{ value: r.psi_warn, label: 'warn ' + r.psi_warn }, { value: r.psi_alert, label: 'alert ' + r.psi_alert }],
    }),
    table([
      { head: 'Feature', cell: (c) => c.name },
      { head: 'Kind', cell: (c) => c.kind },
      { head: 'PSI', cell: (c) => num(c.psi, 4) },
      { head: 'Test', cell: (c) => (c.test ? `${c.test.name} ${num(c.test.statistic, 4)}` : '-') },
      { head: 'p (adjusted)', cell: (c) => (c.test ? num(c.test.p_adjusted, 4) : '-') },
      { head: 'Status', cell: (c) => statusBadge(c.status) },
    ], cols, { id: 'drift-table' }));
  if (r.score) {
    box.append(el('h3', null, 'Score drift'),
      el('p', { id: 'mon-score' }, `PSI ${num(r.score.psi, 4)}` + (r.score.test ? `, ${r.score.test.name} p ${num(r.score.test.p, 4)} ` : ' '),
        statusBadge(r.score.status)),
      binsChart(r.score.bins, 'score distribution, reference and current'));
  }
  return box;
}

function ci(m) {
  return m ? `${num(m.value, 4)} [${num(m.lo, 3)}, ${num(m.hi, 3)}]` : '-';
}

function decaySection(doc) {
  const box = el('section', { id: 'mon-decay' }, el('h3', null, 'Decay (from feedback labels)'));
  if (doc === null) {
    box.append(el('p', { class: 'note' }, 'No decay result yet.'));
    return box;
  }
  box.append(header(doc));
  for (const v of doc.result.versions) {
    const r = v.result;
    box.append(el('h4', null, `Model v${v.version}`));
    if (!r.metrics) {
      box.append(el('p', { class: 'note' }, `${r.labels ?? 0} labels (needs ${r.min_labels}): ${r.status}`));
      continue;
    }
    box.append(
      el('p', null, statusBadge(r.status), ` ${r.labels} labels; ROC AUC ${ci(r.metrics.roc_auc)} ` +
        `against ${num(r.reference_roc_auc, 4)} at training (decay below a drop of ${r.auc_drop})`),
      lineChart([
        { name: 'realized ROC AUC by segment', points: (r.segments || []).map((s) => [s.to, s.roc_auc.value]) },
        { name: 'reference', points: (r.segments || []).map((s) => [s.to, r.reference_roc_auc]), cls: 's2' },
      ], { title: 'realized ROC AUC by segment', xLabel: (x) => x + ' labels' }));
  }
  return box;
}

function estimateSection(doc, history) {
  const box = el('section', { id: 'mon-estimate' }, el('h3', null, 'Estimated performance (no labels needed)'));
  if (doc === null) {
    box.append(el('p', { class: 'note' }, 'No estimate yet.'));
    return box;
  }
  box.append(header(doc));
  for (const v of doc.result.versions) {
    const r = v.result;
    box.append(el('h4', null, `Model v${v.version}`));
    if (!r.estimated) {
      box.append(el('p', { class: 'note' }, `${r.rows} rows (needs ${r.min_rows}): ${r.status}`));
      continue;
    }
    box.append(el('p', null, statusBadge(r.status),
      ` estimated ROC AUC ${num(r.estimated.roc_auc, 4)} (reference ${num(r.reference_roc_auc, 4)})` +
      (r.realized ? `, realized ${ci(r.realized.roc_auc)} on ${r.realized.labels} labels` : '')),
    r.diagnosis_text ? el('p', { class: 'note', id: 'mon-diagnosis' }, `${r.diagnosis}: ${r.diagnosis_text}`) : '');
  }
  // The history of the served version's estimate, oldest to newest.
  const pts = [];
  const real = [];
  for (const h of history.slice().reverse()) {
    const v = (h.result.versions || []).find((x) => x.version === h.model_version);
    if (!v || !v.result.estimated) continue;
    const t = Date.parse(h.computed_at) / 1000;
    pts.push([t, v.result.estimated.roc_auc]);
    if (v.result.realized && v.result.realized.roc_auc) real.push([t, v.result.realized.roc_auc.value]);
  }
  box.append(el('h4', null, 'History'),
    lineChart([{ name: 'estimated ROC AUC', points: pts }, { name: 'realized ROC AUC', points: real }],
      { title: 'estimated and realized ROC AUC over time', xLabel: (x) => when(new Date(x * 1000).toISOString()) }));
  return box;
}

export async function renderMonitor(root) {
  const status = el('div', { id: 'mon-status' });
  const body = el('div');
  async function load() {
    try {
      const why = [];
      // The history is an extra: its failure costs only its chart.
      const [d, dc, es, hist] = await Promise.all([latest('drift', why), latest('decay', why),
        latest('estimate', why), call('GET', '/v1/monitor/estimate?history=50').catch(() => [])]);
      clear(body).append(d === null && dc === null && es === null
        ? el('p', { class: 'note', id: 'mon-none' }, why[0].charAt(0).toUpperCase() + why[0].slice(1))
        : '', driftSection(d), decaySection(dc), estimateSection(es, hist || []));
    } catch (e) {
      clear(body).append(errorBox(e));
    }
  }
  const run = can('models:write') ? el('button', {
    id: 'mon-run', type: 'button',
    onclick: async () => {
      clear(status);
      try {
        await call('POST', '/v1/monitor/run');
        status.append(el('p', { class: 'ok', role: 'status' }, 'Monitoring jobs started; the results follow in a few seconds.'));
        // Only while this view is still on the page: not after a logout
        // or a move to another view.
        setTimeout(() => root.isConnected && load(), 2000);
      } catch (e) {
        status.append(errorBox(e));
      }
    },
  }, 'Run monitoring now') : '';
  root.append(el('h2', null, 'Monitoring'), el('div', { class: 'row' }, run,
    el('button', { type: 'button', id: 'mon-reload', onclick: load }, 'Reload')), status, body);
  await load();
}
