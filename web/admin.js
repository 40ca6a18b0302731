// admin.js -- users and API keys for admins: list, create a user, create
// a key (its secret shown once, here), revoke a key.

import { call } from './api.js';
import { clear, el, errorBox, table, when } from './ui.js';

const ROLES = ['analyst', 'scientist', 'service', 'admin'];

function roleSelect(id, dflt) {
  return el('select', { id }, ROLES.map((r) => el('option', { value: r, selected: r === dflt }, r)));
}

export async function renderAdmin(root) {
  const users = el('div');
  const keys = el('div');
  const status = el('div', { id: 'admin-status' });

  async function load() {
    try {
      const [u, k] = await Promise.all([call('GET', '/v1/users'), call('GET', '/v1/keys')]);
      clear(users).append(table([
        { head: 'User', cell: (x) => x.name },
        { head: 'Role', cell: (x) => x.role },
        { head: 'State', cell: (x) => (x.disabled ? 'disabled' : 'active') },
        { head: 'Created', cell: (x) => when(x.created) },
      ], u, { id: 'users-table' }));
      clear(keys).append(k.length === 0 ? el('p', { class: 'note' }, 'No API keys.') : table([
        { head: 'Id', cell: (x) => el('code', null, x.id) },
        { head: 'Label', cell: (x) => x.label ?? '' },
        { head: 'Role', cell: (x) => x.role },
        { head: 'Created', cell: (x) => when(x.created) },
        { head: 'State', cell: (x) => (x.revoked ? 'revoked' : 'active') },
        {
          head: '',
          cell: (x) => (x.revoked ? '' : el('button', {
            type: 'button', class: 'revoke', 'data-id': x.id,
            onclick: () => run(`key ${x.id} revoked`, 'POST', `/v1/keys/${x.id}/revoke`),
          }, 'Revoke')),
        },
      ], k, { id: 'keys-table' }));
    } catch (e) {
      clear(users).append(errorBox(e));
      clear(keys);
    }
  }

  async function run(done, method, path, body, show) {
    clear(status);
    try {
      const doc = await call(method, path, body);
      // Shown once the lists are reloaded, so that both agree.
      await load();
      status.append(el('p', { class: 'ok', role: 'status' }, done), show ? show(doc) : '');
    } catch (e) {
      status.append(errorBox(e));
    }
  }

  const uName = el('input', { id: 'user-name', placeholder: 'name', autocomplete: 'off' });
  const uPass = el('input', { id: 'user-pass', type: 'password', placeholder: 'password', autocomplete: 'new-password' });
  const uRole = roleSelect('user-role', 'analyst');
  const userForm = el('form', { class: 'card row', id: 'user-form' },
    el('strong', null, 'New user'), uName, uPass, uRole, el('button', { type: 'submit' }, 'Create user'));
  userForm.addEventListener('submit', (ev) => {
    ev.preventDefault();
    run(`user ${uName.value} created`, 'POST', '/v1/users',
      { name: uName.value, password: uPass.value, role: uRole.value });
    uPass.value = '';
  });

  const kLabel = el('input', { id: 'key-label', placeholder: 'label, e.g. crm' });
  const kRole = roleSelect('key-role', 'service');
  const keyForm = el('form', { class: 'card row', id: 'key-form' },
    el('strong', null, 'New API key'), kLabel, kRole, el('button', { type: 'submit' }, 'Create key'));
  keyForm.addEventListener('submit', (ev) => {
    ev.preventDefault();
    run('key created', 'POST', '/v1/keys', { label: kLabel.value, role: kRole.value },
      (doc) => el('p', null, 'The key, shown only this once: ', el('code', { id: 'new-key' }, doc.key)));
  });

  root.append(el('h2', null, 'Users and API keys'), status,
    el('h3', null, 'Users'), userForm, users,
    el('h3', null, 'API keys'), keyForm, keys);
  await load();
}
