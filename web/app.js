// app.js -- the page's entry point: login and logout, the navigation (only
// the views the role may use), and the view router on the URL's fragment
// (#predict, #batch, ...), which changes the view without a reload and so
// without losing the in-memory token.

import { renderAdmin } from './admin.js';
import { ApiError, can, login, logout, session, setSessionEndHandler } from './api.js';
import { renderAudit } from './audit.js';
import { renderBatch } from './batch.js';
import { renderModels } from './models.js';
import { renderMonitor } from './monitor.js';
import { renderPredict, resetPredict } from './predict.js';
import { renderRollouts } from './rollouts.js';
import { clear, el, errorBox } from './ui.js';

// The views: fragment, title, the permission that the nav checks, and the
// renderer. A view reached by its fragment without the permission still
// renders, and shows the server's refusal.
const VIEWS = [
  { id: 'predict', title: 'Predict', perm: 'predict', render: renderPredict },
  { id: 'batch', title: 'Batch', perm: 'predict', render: renderBatch },
  { id: 'models', title: 'Models', perm: 'models:read', render: renderModels },
  { id: 'monitor', title: 'Monitoring', perm: 'monitor', render: renderMonitor },
  { id: 'rollouts', title: 'Rollouts', perm: 'monitor', render: renderRollouts },
  { id: 'users', title: 'Users and keys', perm: 'users', render: renderAdmin },
  { id: 'audit', title: 'Audit', perm: 'audit', render: renderAudit },
];

const $ = (id) => document.getElementById(id);

function showNav() {
  const s = session();
  const nav = clear($('nav'));
  for (const v of VIEWS) {
    if (can(v.perm)) nav.append(el('a', { href: '#' + v.id, 'data-view': v.id }, v.title));
  }
  $('who-name').textContent = s.user;
  $('who-role').textContent = s.role;
  nav.hidden = false;
  $('who').hidden = false;
}

let renderSeq = 0; // a newer navigation wins over a slow earlier render

async function route() {
  if (session() === null) return;
  const id = location.hash.replace(/^#/, '') || VIEWS.find((v) => can(v.perm))?.id || 'predict';
  const v = VIEWS.find((x) => x.id === id);
  const root = clear($('view'));
  const seq = ++renderSeq;
  for (const a of $('nav').querySelectorAll('a')) a.classList.toggle('current', a.dataset.view === id);
  if (!v) {
    root.append(errorBox('No such view: ' + id));
    return;
  }
  const box = el('div', { 'data-view': id });
  try {
    await v.render(box);
  } catch (e) {
    box.append(errorBox(e instanceof ApiError ? e : 'This view failed: ' + e.message));
  }
  if (seq === renderSeq) root.append(box);
}

function showLogin() {
  $('view').hidden = true;
  clear($('view'));
  $('nav').hidden = true;
  $('who').hidden = true;
  $('login-view').hidden = false;
  $('login-pass').value = '';
  $('login-error').textContent = '';
  $('login-user').focus();
}

$('login-form').addEventListener('submit', async (ev) => {
  ev.preventDefault();
  const errBox = $('login-error');
  errBox.textContent = '';
  try {
    await login($('login-user').value, $('login-pass').value);
  } catch (e) {
    errBox.textContent = e.status === 401 ? 'Wrong user name or password.' : e.toString();
    return;
  }
  $('login-pass').value = '';
  $('login-view').hidden = true;
  $('view').hidden = false;
  showNav();
  route();
});

function endSession() {
  logout();
  renderSeq++; // a view still loading is dropped
  resetPredict();
  history.replaceState(null, '', location.pathname);
  showLogin();
}

$('logout').addEventListener('click', endSession);

// A token the server no longer takes (expired, or its secret changed):
// back to the login form, saying why.
setSessionEndHandler((err) => {
  if (session() === null) return;
  endSession();
  $('login-error').textContent = `Your session ended (${err.toString()}); log in again.`;
});

window.addEventListener('hashchange', route);
showLogin();
