// audit.js -- the audit log (GET /v1/audit?limit=N): who changed what, when,
// and the hash chain's links.

import { call } from './api.js';
import { clear, el, errorBox, table, when } from './ui.js';

function what(e) {
  if (e.from !== null || e.to !== null) return `${e.alias ?? ''} v${e.from ?? '-'} → v${e.to ?? '-'}`;
  return e.target ?? '';
}

export async function renderAudit(root) {
  const limit = el('select', { id: 'audit-limit' },
    ['50', '200', '1000'].map((n) => el('option', { value: n }, n)));
  const box = el('div');
  async function load() {
    try {
      const list = await call('GET', '/v1/audit?limit=' + limit.value);
      clear(box).append(table([
        { head: '#', cell: (e) => String(e.id) },
        { head: 'When', cell: (e) => when(e.at) },
        { head: 'Who', cell: (e) => e.actor },
        { head: 'Action', cell: (e) => e.action },
        { head: 'What', cell: what },
        { head: 'Reason', cell: (e) => e.reason ?? '' },
        { head: 'Details', cell: (e) => (e.details ? el('code', null, JSON.stringify(e.details)) : '') },
        { head: 'Hash', cell: (e) => el('code', { title: e.hash }, (e.hash || '').slice(0, 12)) },
      ], list.slice().reverse(), { id: 'audit-table' }));
    } catch (e) {
      clear(box).append(errorBox(e));
    }
  }
  limit.addEventListener('change', load);
  root.append(el('h2', null, 'Audit log'),
    el('p', { class: 'note' },
      'Newest first. Each entry carries the hash of the one before it; ',
      el('code', null, 'churn audit verify'), ' checks the whole chain.'),
    el('div', { class: 'row' }, el('label', null, 'Entries ', limit)), box);
  await load();
}
