// models.js -- the model registry: versions with their held-out metrics and
// aliases (GET /v1/models); promote (through the server's evaluation gate)
// and rollback for the roles that may change models. The buttons are only
// hidden from other roles: the server refuses them with 403 either way.

import { call, can } from './api.js';
import { badge, clear, el, errorBox, num, table, when } from './ui.js';

function metric(m, name) {
  return m && m.metrics && m.metrics.test ? num(m.metrics.test[name], 4) : '-';
}

async function act(status, what, method, path, body, reload) {
  clear(status).append(el('p', { class: 'note' }, what + '…'));
  try {
    const doc = await call(method, path, body);
    const text = doc.promoted !== undefined
      ? (doc.promoted
        ? `v${doc.version} is champion (ROC AUC ${num(doc.candidate_auc)} against the previous ` +
          `champion's ${num(doc.champion_auc)} on its held-out rows${doc.forced ? ', forced' : ''})`
        : doc.message)
      : `rolled back: v${doc.champion} is champion`;
    // Shown once the table is reloaded, so that both agree.
    await reload();
    clear(status).append(el('p', { class: 'ok', role: 'status' }, text));
  } catch (e) {
    // The gate's refusal (409) carries both AUCs in its message.
    clear(status).append(errorBox(e));
  }
}

export async function renderModels(root) {
  const status = el('div', { id: 'models-status' });
  const box = el('div');
  const writer = can('models:write');
  const force = el('input', { id: 'promote-force', type: 'checkbox' });
  const reason = el('input', { id: 'promote-reason', type: 'text', placeholder: 'reason (audited)' });
  async function load() {
    let list;
    try {
      list = await call('GET', '/v1/models');
    } catch (e) {
      clear(box).append(errorBox(e));
      return;
    }
    const body = () => ({ force: force.checked, reason: reason.value });
    clear(box).append(table([
      { head: 'Version', cell: (m) => 'v' + m.version },
      { head: 'Family', cell: (m) => m.family },
      { head: 'Created', cell: (m) => when(m.created) },
      { head: 'ROC AUC', cell: (m) => metric(m, 'roc_auc') },
      { head: 'PR AUC', cell: (m) => metric(m, 'pr_auc') },
      { head: 'Brier', cell: (m) => metric(m, 'brier') },
      { head: 'ECE', cell: (m) => metric(m, 'ece') },
      { head: 'Threshold', cell: (m) => metric(m, 'threshold') },
      { head: 'Aliases', cell: (m) => (m.aliases || []).map((a) => badge(a, 'alias-' + a)) },
      {
        head: writer ? 'Action' : '',
        cell: (m) => (writer && !(m.aliases || []).includes('champion')
          ? el('button', {
            type: 'button', class: 'promote', 'data-version': m.version,
            onclick: () => act(status, `promoting v${m.version}`, 'POST',
              `/v1/models/${m.version}/promote`, body(), load),
          }, `Promote v${m.version}`)
          : ''),
      },
    ], list, { id: 'models-table' }));
  }
  root.append(el('h2', null, 'Model registry'),
    el('p', { class: 'note' },
      'Metrics are on each version\'s held-out rows. Promotion scores candidate and champion ' +
      'on the candidate\'s held-out rows and refuses a candidate that is not better by the margin.'),
    writer
      ? el('div', { class: 'card row' },
        el('label', null, force, ' force (skip the gate)'), reason,
        el('button', {
          id: 'rollback', type: 'button',
          onclick: () => act(status, 'rolling back', 'POST', '/v1/models/rollback',
            { reason: reason.value }, load),
        }, 'Roll back to the previous champion'))
      : el('p', { class: 'note', id: 'models-readonly' },
        'Your role may read the registry but not change it.'),
    status, box);
  await load();
}
