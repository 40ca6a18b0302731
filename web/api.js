// api.js -- the one place that talks to the server.
//
// The bearer token lives in a module variable only: no localStorage, no
// cookie. A reload logs out, no other tab or browser shares the session,
// and since the browser never attaches credentials by itself there is no
// cross-site request forgery to defend against.

let token = null;
let user = null;
let role = null;

// Which permissions each role holds: the matrix of docs/security.md. Used
// only to hide what a role may not do; the server checks every call.
const PERMS = {
  admin: ['predict', 'feedback', 'models:read', 'models:write', 'users', 'audit', 'monitor', 'operate'],
  scientist: ['predict', 'feedback', 'models:read', 'models:write', 'audit', 'monitor', 'operate'],
  analyst: ['predict', 'feedback', 'models:read', 'monitor'],
  service: ['predict', 'feedback'],
};

// Called when the server refuses the token a call carried (401): it has
// expired, or the server's token secret changed. app.js ends the session.
let onSessionEnd = () => {};
export function setSessionEndHandler(fn) {
  onSessionEnd = fn;
}

export class ApiError extends Error {
  constructor(status, doc, fallback) {
    const msg = doc && typeof doc.message === 'string' ? doc.message : fallback;
    super(msg);
    this.status = status;
    this.error = doc && doc.error ? doc.error : 'http_' + status;
    this.field = doc && doc.field ? doc.field : null;
  }
  // "403 forbidden: role 'analyst' may not audit", as shown to the user.
  toString() {
    return this.status + ' ' + this.error + ': ' + this.message;
  }
}

export function session() {
  return token === null ? null : { user, role };
}

export function can(perm) {
  return role !== null && (PERMS[role] || []).includes(perm);
}

function parse(text) {
  if (!text) return null;
  try {
    return JSON.parse(text);
  } catch (e) {
    return null;
  }
}

// Calls the API: resolves with the parsed JSON body of a 2xx answer,
// rejects with an ApiError carrying the server's message otherwise.
export async function call(method, path, body) {
  const headers = {};
  if (token !== null) headers.Authorization = 'Bearer ' + token;
  const init = { method, headers, credentials: 'omit', cache: 'no-store' };
  if (body !== undefined) {
    headers['Content-Type'] = 'application/json';
    init.body = JSON.stringify(body);
  }
  let r;
  try {
    r = await fetch(path, init);
  } catch (e) {
    throw new ApiError(0, null, 'the server cannot be reached');
  }
  const doc = parse(await r.text());
  if (!r.ok) {
    const e = new ApiError(r.status, doc, r.statusText || 'request failed');
    if (r.status === 401 && headers.Authorization) onSessionEnd(e);
    throw e;
  }
  return doc;
}

export async function login(name, password) {
  const doc = await call('POST', '/v1/auth/token', { username: name, password });
  token = doc.access_token;
  user = name;
  role = doc.role;
  return session();
}

export function logout() {
  token = null;
  user = null;
  role = null;
}

// Uploads a CSV file (a File or Blob) with XMLHttpRequest, whose upload
// events (unlike fetch's) report progress: onProgress(fraction sent, done),
// with 'done' true once the answer is in.
export function uploadCsv(path, file, onProgress) {
  return new Promise((resolve, reject) => {
    const x = new XMLHttpRequest();
    const sent = token !== null;
    x.open('POST', path);
    if (sent) x.setRequestHeader('Authorization', 'Bearer ' + token);
    x.setRequestHeader('Content-Type', 'text/csv');
    x.upload.onprogress = (e) => {
      if (e.lengthComputable) onProgress(e.loaded / e.total, false);
    };
    x.onload = () => {
      const doc = parse(x.responseText);
      if (x.status >= 200 && x.status < 300) {
        onProgress(1, true);
        resolve(doc);
      } else {
        const e = new ApiError(x.status, doc, x.statusText || 'upload failed');
        if (x.status === 401 && sent) onSessionEnd(e);
        reject(e);
      }
    };
    x.onerror = () => reject(new ApiError(0, null, 'the server cannot be reached'));
    x.send(file);
  });
}
