// rollouts.js -- canary and shadow rollouts (GET /v1/rollouts): each one's
// state, steps, gates and its last evaluation (the arms side by side and
// every gate's check); pause, resume and abort for the roles that operate.

import { call, can } from './api.js';
import { badge, clear, el, errorBox, num, pct, table, when } from './ui.js';

const ACTIVE = ['shadow', 'canary', 'paused'];

function stateBadge(s) {
  const kind = { promoted: 'band-low', rolled_back: 'band-high', aborted: 'band-medium' }[s];
  return badge(s, kind || 'alias-champion');
}

function steps(r) {
  return el('span', { class: 'steps' }, r.steps.map((p, i) => badge(p + '%',
    i < r.step || r.state === 'promoted' ? 'band-low' : i === r.step && ACTIVE.includes(r.state) ? 'alias-champion' : '')));
}

function resultBadge(res) {
  return badge(res, res === 'pass' ? 'band-low' : res === 'fail' ? 'band-high' : res === 'wait' ? 'band-medium' : '');
}

function evaluation(ev) {
  if (!ev) return el('p', { class: 'note' }, 'Not evaluated yet.');
  const arms = Object.entries(ev.arms || {}).map(([name, a]) => ({ name, ...a }));
  return el('div', null,
    el('p', { id: 'ro-verdict' }, `Evaluated ${ev.elapsed_s ? num(ev.elapsed_s, 1) + ' s into the step' : ''}` +
      ` (${ev.percent}% on the candidate): verdict `, resultBadge(ev.verdict)),
    table([
      { head: 'Arm', cell: (a) => a.name },
      { head: 'Served here', cell: (a) => String(a.served_here) },
      { head: 'Error rate', cell: (a) => pct(a.error_rate, 2) },
      { head: 'p99', cell: (a) => (a.p99_s === null ? '-' : num(a.p99_s * 1000, 2) + ' ms') },
      { head: 'Predictions', cell: (a) => String(a.predictions) },
      { head: 'Labels', cell: (a) => String(a.labels) },
      { head: 'Est. ROC AUC', cell: (a) => num(a.estimated_roc_auc, 4) },
      { head: 'Realized ROC AUC', cell: (a) => num(a.realized_roc_auc, 4) },
    ], arms, { id: 'ro-arms' }),
    table([
      { head: 'Gate', cell: (c) => c.gate },
      { head: 'Result', cell: (c) => resultBadge(c.result) },
      { head: 'Value', cell: (c) => num(c.value, 4) },
      { head: 'Limit', cell: (c) => num(c.limit, 4) },
      { head: 'Note', cell: (c) => c.note || '' },
    ], ev.checks || [], { id: 'ro-checks' }));
}

export async function renderRollouts(root) {
  const status = el('div', { id: 'ro-status' });
  const body = el('div');
  const operator = can('operate');
  // The outcome is shown once the list is reloaded, so that what the
  // page says and what it lists agree.
  async function act(r, verb) {
    let msg;
    clear(status);
    try {
      const doc = await call('POST', `/v1/rollouts/${r.id}/${verb}`, { reason: 'from the web UI' });
      msg = el('p', { class: 'ok', role: 'status' }, `rollout ${r.id}: ${doc.state}`);
    } catch (e) {
      msg = errorBox(e);
    }
    await load();
    status.append(msg);
  }
  async function load() {
    let list;
    try {
      list = await call('GET', '/v1/rollouts');
    } catch (e) {
      clear(body).append(errorBox(e));
      return;
    }
    clear(body);
    if (list.length === 0) {
      body.append(el('p', { class: 'note', id: 'ro-none' },
        'No rollout yet. A retrained challenger starts one by itself; POST /v1/rollouts or ' +
        '`churn rollout start` start one by hand.'));
      return;
    }
    const cur = list[0];
    const buttons = operator && ACTIVE.includes(cur.state)
      ? el('div', { class: 'row' },
        cur.state === 'paused'
          ? el('button', { type: 'button', id: 'ro-resume', onclick: () => act(cur, 'resume') }, 'Resume')
          : el('button', { type: 'button', id: 'ro-pause', onclick: () => act(cur, 'pause') }, 'Pause'),
        el('button', { type: 'button', id: 'ro-abort', onclick: () => act(cur, 'abort') }, 'Abort'))
      : '';
    body.append(
      el('div', { class: 'card', id: 'ro-current' },
        el('p', null, el('strong', null, `Rollout ${cur.id}: v${cur.candidate} against champion v${cur.champion} `),
          stateBadge(cur.state), ' steps ', steps(cur)),
        el('p', { class: 'note' }, `Started ${when(cur.created)} by ${cur.actor}` +
          (cur.reason ? ` (${cur.reason})` : '') + `; this step since ${when(cur.step_started)}` +
          (cur.ended ? `; ended ${when(cur.ended)}` : '')),
        buttons,
        el('h4', null, 'Last evaluation'), evaluation(cur.last_evaluation),
        el('h4', null, 'Gates'),
        el('dl', { class: 'kv', id: 'ro-gates' },
          Object.entries(cur.gates || {}).flatMap(([k, v]) => [el('dt', null, k), el('dd', null, String(v))]))),
      el('h3', null, 'All rollouts'),
      table([
        { head: 'Id', cell: (r) => String(r.id) },
        { head: 'Candidate', cell: (r) => 'v' + r.candidate },
        { head: 'Champion', cell: (r) => 'v' + r.champion },
        { head: 'State', cell: (r) => stateBadge(r.state) },
        { head: 'Steps', cell: steps },
        { head: 'Started', cell: (r) => when(r.created) },
        { head: 'Ended', cell: (r) => when(r.ended) },
        { head: 'By', cell: (r) => r.actor },
      ], list, { id: 'ro-table' }));
  }
  root.append(el('h2', null, 'Rollouts'),
    el('div', { class: 'row' }, el('button', { type: 'button', id: 'ro-reload', onclick: load }, 'Reload')),
    status, body);
  await load();
}
