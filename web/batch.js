// batch.js -- the batch view: a CSV file uploaded to POST /v1/predict/batch
// (text/csv) with a progress bar, the results summarised, shown and offered
// as a CSV download made in the browser.

import { uploadCsv } from './api.js';
import { clear, el, errorBox, num, pct, table, toCsv } from './ui.js';

let lastUrl = null; // the previous download's object URL, released on the next upload

// The download: one row per input row, in input order, scored or not.
function resultCsv(preds) {
  const header = ['row', 'customer_id', 'probability', 'label', 'risk_band', 'model_version',
    'reasons', 'error', 'line', 'field', 'message'];
  const rows = preds.map((p, i) => p.error
    ? [i + 1, '', '', '', '', '', '', p.error, p.line ?? '', p.field ?? '', p.message ?? '']
    : [i + 1, p.customer_id ?? '', p.probability, p.label, p.risk_band, p.model.version,
      (p.reasons || []).map((r) => r.text).join('; '), '', '', '', '']);
  return toCsv(header, rows);
}

function summary(preds) {
  const n = { high: 0, medium: 0, low: 0, error: 0 };
  for (const p of preds) n[p.error ? 'error' : p.risk_band]++;
  return n;
}

function renderResult(box, doc, fileName) {
  const preds = doc.predictions || [];
  const n = summary(preds);
  if (lastUrl !== null) URL.revokeObjectURL(lastUrl);
  lastUrl = URL.createObjectURL(new Blob([resultCsv(preds)], { type: 'text/csv' }));
  const base = fileName.replace(/\.csv$/i, '');
  clear(box).append(
    el('p', { id: 'batch-summary' },
      `${doc.count} rows: ${n.high} high, ${n.medium} medium, ${n.low} low risk, ${n.error} not scored.`),
    el('p', null, el('a', { id: 'batch-download', class: 'button', href: lastUrl,
      download: base + '.predictions.csv' }, 'Download results (CSV)')),
    el('h3', null, 'First rows'),
    table([
      { head: 'Row', cell: (p) => String(preds.indexOf(p) + 1) },
      { head: 'Customer', cell: (p) => p.customer_id ?? '' },
      { head: 'Risk', cell: (p) => (p.error ? '-' : pct(p.probability)) },
      { head: 'Band', cell: (p) => p.risk_band ?? '' },
      { head: 'Top reason / error', cell: (p) => (p.error
        ? (p.line != null ? `line ${p.line}${p.field ? ' (' + p.field + ')' : ''}: ` : '') +
          (p.message ?? p.error)
        : (p.reasons && p.reasons[0] ? p.reasons[0].text : '')) },
    ], preds.slice(0, 20), { id: 'batch-rows' }));
}

export function renderBatch(root) {
  const file = el('input', { id: 'batch-file', type: 'file', accept: '.csv,text/csv' });
  const k = el('input', { id: 'batch-k', type: 'number', min: 0, max: 16, value: 1 });
  const bar = el('progress', { id: 'batch-progress', max: 1, value: 0 });
  const label = el('span', { id: 'batch-progress-text', class: 'note' }, '');
  const out = el('div', { id: 'batch-result' });
  const go = el('button', { id: 'batch-upload', type: 'submit' }, 'Upload and score');
  const form = el('form', { class: 'card narrow-form' },
    el('label', { class: 'field' }, el('span', null, 'CSV file with a header line'), file),
    el('label', { class: 'field' }, el('span', null, 'Reasons per customer'), k),
    el('div', { class: 'actions' }, go),
    el('div', { class: 'progress' }, bar, label));
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    clear(out);
    const f = file.files[0];
    if (!f) {
      out.append(errorBox('Choose a CSV file first.'));
      return;
    }
    go.disabled = true;
    bar.value = 0;
    label.textContent = 'uploading…';
    try {
      const doc = await uploadCsv('/v1/predict/batch?k=' + encodeURIComponent(k.value || '0'), f,
        (frac, done) => {
          bar.value = frac;
          label.textContent = done ? `scored (${num(f.size / 1024, 0)} KiB)`
            : frac < 1 ? `uploaded ${pct(frac, 0)} of ${num(f.size / 1024, 0)} KiB`
              : 'uploaded; scoring…';
        });
      renderResult(out, doc, f.name);
    } catch (e) {
      label.textContent = '';
      out.append(errorBox(e));
    } finally {
      go.disabled = false;
    }
  });
  root.append(el('h2', null, 'Batch scoring'),
    el('p', { class: 'note' },
      'The file goes to the server as is (text/csv); rows that cannot be read are reported ' +
      'with their line and the others are scored.'),
    form, out);
}
