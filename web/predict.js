// predict.js -- the single-prediction view: a form built from the served
// model's schema (GET /v1/schema), scored with reasons and what-if actions
// (POST /v1/predict?k=3&actions=2); then, once it is known, what the
// customer did (POST /v1/feedback), which the monitoring measures decay on.

import { call, can } from './api.js';
import { badge, clear, el, errorBox, num, pct, table } from './ui.js';

let schemaDoc = null; // the served model's, fetched each time the view opens

export function resetPredict() {
  schemaDoc = null;
}

// A column that may be missing gets an empty choice, sent as null.
function missingOption(col) {
  return col.nullable === false ? [] : [el('option', { value: '' }, '(missing)')];
}

// One input per column the model reads. The target is not asked for; the
// id is optional text (echoed back, never stored in the clear).
function field(col) {
  const id = 'f-' + col.name;
  const label = col.label ? `${col.label} (${col.name})` : col.name;
  let input;
  if (col.kind === 'categorical') {
    input = el('select', { id, name: col.name },
      (col.categories || []).map((c) => el('option', { value: c }, c)).concat(missingOption(col)));
  } else if (col.kind === 'binary') {
    input = el('select', { id, name: col.name },
      el('option', { value: 'false' }, 'No'), el('option', { value: 'true' }, 'Yes'),
      ...missingOption(col));
  } else if (col.kind === 'numeric' || col.kind === 'integer') {
    const r = Array.isArray(col.range) ? col.range : [];
    input = el('input', {
      id, name: col.name, type: 'number', inputmode: 'decimal',
      step: col.kind === 'integer' ? '1' : 'any',
      min: r.length === 2 ? r[0] : null, max: r.length === 2 ? r[1] : null,
      placeholder: r.length === 2 ? `${r[0]} to ${r[1]}` : '',
    });
  } else {
    input = el('input', { id, name: col.name, type: 'text', placeholder: 'optional' });
  }
  return el('label', { class: 'field' }, el('span', null, label), input);
}

// The request body: every column present (the server refuses a missing
// key rather than imputing it), empty numbers as null (a missing value,
// which the schema may or may not allow: the server says which).
function readForm(form, cols) {
  const body = {};
  for (const col of cols) {
    const v = form.elements[col.name].value;
    if (col.kind === 'binary') body[col.name] = v === '' ? null : v === 'true';
    else if (col.kind === 'numeric' || col.kind === 'integer') body[col.name] = v === '' ? null : Number(v);
    else if (col.kind === 'id') {
      if (v !== '') body[col.name] = v;
    } else body[col.name] = v === '' ? null : v;
  }
  return body;
}

function reasonBar(r) {
  // Probability points the reason adds (red) or removes (green); 30
  // points fill the bar.
  const w = Math.min(100, (Math.abs(r.points || 0) / 30) * 100);
  return el('span', { class: 'pbar ' + (r.direction === 'raises' ? 'up' : 'down') },
    el('span', { class: 'fill', style: null, 'data-w': w.toFixed(0) }),
    `${r.points > 0 ? '+' : ''}${num(r.points, 1)} pts`);
}

// What the customer did, joined to this prediction by its id.
function outcomeForm(predictionId) {
  const churned = el('select', { id: 'fb-churned' },
    el('option', { value: 'true' }, 'left (churned)'), el('option', { value: 'false' }, 'stayed'));
  const date = el('input', { id: 'fb-date', type: 'date', value: new Date().toISOString().slice(0, 10) });
  const status = el('div', { id: 'fb-status' });
  const form = el('form', { class: 'card row', id: 'fb-form' },
    el('strong', null, 'Outcome'), el('label', null, 'The customer ', churned),
    el('label', null, 'observed on ', date), el('button', { type: 'submit' }, 'Record the outcome'), status);
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    clear(status);
    try {
      const r = await call('POST', '/v1/feedback',
        { prediction_id: predictionId, churned: churned.value === 'true', observed_date: date.value });
      status.append(el('span', { class: 'ok', role: 'status' },
        `recorded: ${r.churned ? 'churned' : 'stayed'}`));
    } catch (e) {
      status.append(errorBox(e));
    }
  });
  return form;
}

function renderResult(box, doc) {
  clear(box);
  box.append(
    el('div', { class: 'score' },
      el('span', { class: 'big', id: 'pred-prob' }, pct(doc.probability)),
      badge(doc.risk_band + ' risk', 'band-' + doc.risk_band),
      el('span', { class: 'note' },
        `label ${doc.label} at threshold ${num(doc.threshold, 3)}; model v${doc.model.version ?? '-'} ` +
        `(${doc.model.alias || 'file'}, ${doc.model.family})` +
        (doc.arm && doc.arm !== 'champion' ? `, answered by the ${doc.arm}` : ''))),
    el('h3', null, 'Why'),
    table([
      { head: 'Field', cell: (r) => r.field },
      { head: 'Reason', cell: (r) => r.text },
      { head: 'Effect', cell: reasonBar },
    ], doc.reasons || [], { id: 'pred-reasons' }),
    el('h3', null, 'What could keep this customer'),
    (doc.actions || []).length === 0
      ? el('p', { class: 'note' }, 'No retention action lowers the risk for this customer.')
      : table([
        { head: 'Action', cell: (a) => a.text },
        { head: 'Risk after', cell: (a) => pct(a.probability) },
        { head: 'Drop', cell: (a) => pct(a.drop) },
      ], doc.actions, { id: 'pred-actions' }),
    (doc.warnings || []).length
      ? el('p', { class: 'note', id: 'pred-warnings' }, 'Warnings: ' +
        doc.warnings.map((w) => (w.field ? w.field + ': ' : '') + (w.message || '')).join('; '))
      : '',
    el('p', { class: 'note' }, 'Prediction id ', el('code', null, doc.prediction_id), '.'),
    can('feedback') ? outcomeForm(doc.prediction_id) : '');
  // Widths are set here, not in a style attribute: the CSP allows no inline styles.
  for (const f of box.querySelectorAll('.fill')) f.style.width = f.dataset.w + '%';
}

export async function renderPredict(root) {
  const out = el('div', { id: 'pred-result' });
  root.append(el('h2', null, 'Single prediction'));
  // Fetched each time: a promotion may have changed the schema.
  try {
    schemaDoc = await call('GET', '/v1/schema');
  } catch (e) {
    root.append(errorBox(e));
    return;
  }
  const cols = schemaDoc.schema.columns.filter((c) => c.kind !== 'target');
  const status = el('div', { id: 'pred-error' });
  const form = el('form', { id: 'pred-form', class: 'card grid', novalidate: true },
    cols.map(field),
    el('div', { class: 'actions' }, el('button', { type: 'submit' }, 'Predict')));
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    clear(status);
    for (const f of form.querySelectorAll('.bad')) f.classList.remove('bad');
    try {
      const doc = await call('POST', '/v1/predict?k=3&actions=2', readForm(form, cols));
      renderResult(out, doc);
    } catch (e) {
      clear(out);
      status.append(errorBox(e));
      if (e.field && form.elements[e.field]) {
        form.elements[e.field].classList.add('bad');
        form.elements[e.field].focus();
      }
    }
  });
  root.append(
    el('p', { class: 'note' },
      `Fields of the served model v${schemaDoc.model.version ?? '-'} (${schemaDoc.schema.name}).`),
    form, status, out);
}
