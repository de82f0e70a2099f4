// Dashboard glue: fetches the API, hands report JSON to crm-web (Rust → SVG), fills the
// tables. No chart logic here: a chart's bars say which listing filter they stand for
// (`data-drill`), and a click lists the activities behind the bar.
import init, { renderBurnDown, renderChart, verifyExport } from '/pkg/crm_web.js';

const $ = (sel) => document.querySelector(sel);
const state = {
  key: sessionStorage.getItem('crm-key'), session: null, cursor: null, seq: 0,
  // The activity log's search: listing query parameters (userId and departmentId pick
  // the listing's path), set by the search form or by a chart bar.
  filters: {},
  entity: null, entityCursor: null,
};

class ApiError extends Error {
  constructor(status, code, message) { super(message); this.status = status; this.code = code; }
}

async function request(path) {
  let response;
  try {
    response = await fetch(path, { headers: { Authorization: `Bearer ${state.key}` } });
  } catch {
    throw new ApiError(0, 'network', 'The server cannot be reached.');
  }
  if (!response.ok) {
    const body = await response.json().catch(() => null);
    throw new ApiError(response.status, body?.error?.code ?? 'http', body?.error?.message ?? `HTTP ${response.status}`);
  }
  return response;
}

async function api(path) {
  let response;
  try {
    response = await fetch(path, { headers: { Authorization: `Bearer ${state.key}` } });
  } catch {
    throw new ApiError(0, 'network', 'The server cannot be reached.');
  }
  const body = await response.json().catch(() => null);
  if (!response.ok) {
    throw new ApiError(response.status, body?.error?.code ?? 'http', body?.error?.message ?? `HTTP ${response.status}`);
  }
  return body;
}

function showError(message) {
  const box = $('#error');
  box.textContent = message;
  box.hidden = !message;
}

function explain(err) {
  if (err.status === 401) return 'This sign-in was not accepted: the key or token is unknown, expired or revoked. Ask for a new one.';
  if (err.status === 403) return 'This sign-in may not read that (a key needs the read scope; a viewer token covers only its user or department).';
  return err.message;
}

function setBusy(busy, text = '') {
  $('#dashboard').setAttribute('aria-busy', String(busy));
  $('#status').textContent = busy ? 'Loading…' : text;
}

async function signIn(key) {
  state.key = key;
  showError('');
  try {
    state.session = await api('/v1/session');
    sessionStorage.setItem('crm-key', key);
  } catch (err) {
    state.key = null;
    sessionStorage.removeItem('crm-key');
    document.body.dataset.state = 'signed-out';
    showError(explain(err));
    return;
  }
  $('#sign-in').hidden = true;
  $('#dashboard').hidden = false;
  $('#sign-out').hidden = false;
  $('.balance').hidden = !state.session.tenantWide;
  $('#verify-server').hidden = !state.session.tenantWide;
  if (!state.session.departments.length) $('#scope-kind').value = 'users';
  fillScopes();
  const users = $('#f-user');
  for (const u of state.session.users) users.append(new Option(`${u.name} (${u.id})`, u.id));
  await Promise.all([refresh(), balance(), credits()]);
}

function signOut() {
  sessionStorage.removeItem('crm-key');
  location.reload();
}

function fillScopes() {
  const kind = $('#scope-kind').value;
  const select = $('#scope-id');
  select.replaceChildren();
  const items = kind === 'users'
    ? state.session.users.map((u) => [u.id, `${u.name} (${u.id})`])
    : state.session.departments.map((d) => [d.id, d.name]);
  for (const [id, label] of items) select.append(new Option(label, id));
}

async function balance() {
  if (!state.session.tenantWide) return;
  try {
    const b = await api('/v1/credits/balance');
    $('#balance').textContent = b.balance;
  } catch (err) {
    $('#balance').textContent = '–';
  }
}

const when = (t) => (t ? new Date(t).toLocaleString() : '–');

// The tenant's grants with their remainders, the balance after each of the latest
// ledger entries, and the alerts raised (tenant-wide sign-ins only).
async function credits() {
  if (!state.session.tenantWide) return;
  try {
    const [grants, ledger, alerts] = await Promise.all([
      api('/v1/credits/grants?limit=50'),
      api('/v1/credits/ledger?limit=200'),
      api('/v1/credits/alerts?limit=20'),
    ]);
    $('#burn-down').innerHTML = renderBurnDown(JSON.stringify(ledger));
    const body = $('#grants tbody');
    body.replaceChildren();
    for (const g of grants.grants) {
      const tr = document.createElement('tr');
      tr.append(cell(g.id), cell(g.amount), cell(g.remaining), cell(String(g.priority)),
        cell(when(g.effectiveAt)), cell(when(g.expiresAt)), cell(g.status, `grant-${g.status}`), cell(g.reason));
      body.append(tr);
    }
    const list = $('#alerts');
    list.replaceChildren();
    for (const a of alerts.alerts) {
      const li = document.createElement('li');
      li.className = `alert-${a.state}`;
      li.textContent = `${when(a.at)} · ${a.ruleId} ${a.state}${a.grantId ? ` (grant ${a.grantId})` : ''} · balance ${a.balance}`;
      list.append(li);
    }
    if (!alerts.alerts.length) list.append(Object.assign(document.createElement('li'), { textContent: 'No alerts raised.' }));
    $('#credits-panel').hidden = false;
  } catch (err) {
    showError(explain(err));
  }
}

function query(extra = {}) {
  const params = new URLSearchParams({ since: $('#period').value, groupBy: $('#group-by').value, ...extra });
  if ($('#tz').value) params.set('tz', $('#tz').value);
  return params;
}

async function refresh() {
  const kind = $('#scope-kind').value;
  const id = $('#scope-id').value;
  if (!id) { showError('The directory has no entries to show yet.'); return; }
  const seq = ++state.seq;
  document.body.dataset.state = 'loading';
  setBusy(true);
  showError('');
  try {
    const report = await api(`/v1/reports/${kind}/${encodeURIComponent(id)}?${query()}`);
    if (seq !== state.seq) return; // a newer selection is on its way
    render(report);
    state.cursor = null;
    $('#activities tbody').replaceChildren();
    await loadActivities(seq);
    if (seq !== state.seq) return;
    setBusy(false, `${report.totalActivities} activities, ${report.timezone}, by ${report.groupBy}`);
    document.body.dataset.state = 'ready';
  } catch (err) {
    if (seq !== state.seq) return;
    setBusy(false);
    showError(explain(err));
    document.body.dataset.state = 'error';
  }
}

const userName = (id) => state.session.users.find((u) => u.id === id)?.name ?? id;

function render(report) {
  const json = JSON.stringify(report);
  const session = JSON.stringify(state.session);
  for (const el of document.querySelectorAll('[data-chart]')) {
    el.innerHTML = renderChart(json, el.dataset.chart, session);
  }
  $('#total').textContent = report.totalActivities;
  $('#credits').textContent = report.totalCreditsUsed;
  $('#most-active').textContent = report.mostActiveUser ? `${userName(report.mostActiveUser.userId)} (${report.mostActiveUser.count})` : '–';
  $('#ips').textContent = report.complianceSummary.uniqueIpAddresses;
}

function cell(text, className) {
  const td = document.createElement('td');
  td.textContent = text;
  if (className) td.className = className;
  return td;
}

function row(a) {
  const tr = document.createElement('tr');
  const op = a.permission.operationContext;
  const entity = document.createElement('td');
  if (a.entityType && a.entityId) {
    const open = Object.assign(document.createElement('button'), {
      type: 'button', className: 'entity', textContent: `${a.entityType} ${a.entityId}`,
      title: `History of ${a.entityType} ${a.entityId}`,
    });
    open.addEventListener('click', () => openEntity(a.entityType, a.entityId));
    entity.append(open);
  }
  tr.append(
    cell(new Date(a.occurredAt).toLocaleString()),
    cell(a.userContext.user.name),
    cell(a.operation),
    cell(a.outcome, `outcome-${a.outcome}`),
    cell(a.credits),
    cell(`${op.has ? 'allowed' : 'refused'} · ${op.source} · ${op.reason}`),
    entity,
    cell(a.userContext.entityPath, 'path'),
  );
  return tr;
}

// The listing the search asks for: a user or department filter picks its path (they
// are path subjects in the API), everything else is a query parameter.
function listingPath() {
  const { userId, departmentId, ...rest } = state.filters;
  const [kind, id] = userId ? ['users', userId]
    : departmentId ? ['departments', departmentId]
      : [$('#scope-kind').value, $('#scope-id').value];
  const params = new URLSearchParams({ limit: '20', ...rest });
  if (!rest.from) params.set('since', $('#period').value);
  if (state.cursor) params.set('cursor', state.cursor);
  return `/v1/${kind}/${encodeURIComponent(id)}/activities?${params}`;
}

async function loadActivities(seq) {
  const page = await api(listingPath());
  if (seq !== state.seq) return;
  const body = $('#activities tbody');
  for (const a of page.activities) body.append(row(a));
  state.cursor = page.nextCursor;
  $('#more').hidden = !page.nextCursor;
  const shown = body.rows.length;
  const described = describeFilters();
  $('#filters').textContent = described
    ? `${shown}${page.nextCursor ? '+' : ''} activities where ${described}.`
    : '';
}

const FILTER_NAMES = {
  userId: 'user', departmentId: 'department', operation: 'operation', outcome: 'outcome',
  entityType: 'entity type', entityId: 'entity id', location: 'location', from: 'from', to: 'until',
};

function describeFilters() {
  return Object.entries(state.filters).map(([k, v]) => {
    if (k === 'userId') return `user is ${userName(v)}`;
    if (k === 'departmentId') return `department is ${state.session.departments.find((d) => d.id === v)?.name ?? v}`;
    if (k === 'from' || k === 'to') return `${FILTER_NAMES[k]} ${new Date(v).toLocaleString()}`;
    return `${FILTER_NAMES[k]} is ${v}`;
  }).join(', ');
}

// `datetime-local` holds local wall time; the API takes instants.
const toInput = (iso) => {
  const d = new Date(iso);
  return new Date(d.getTime() - d.getTimezoneOffset() * 60_000).toISOString().slice(0, 16);
};
const fromInput = (value) => (value ? new Date(value).toISOString() : '');

function fillSearchForm() {
  const f = state.filters;
  if (f.userId && ![...$('#f-user').options].some((o) => o.value === f.userId)) {
    $('#f-user').append(new Option(f.userId, f.userId));
  }
  $('#f-user').value = f.userId ?? '';
  $('#f-operation').value = f.operation ?? '';
  $('#f-outcome').value = f.outcome ?? '';
  $('#f-entity-type').value = f.entityType ?? '';
  $('#f-entity-id').value = f.entityId ?? '';
  $('#f-from').value = f.from ? toInput(f.from) : '';
  $('#f-to').value = f.to ? toInput(f.to) : '';
}

function readSearchForm() {
  const keep = {
    userId: $('#f-user').value,
    operation: $('#f-operation').value.trim(),
    outcome: $('#f-outcome').value,
    entityType: $('#f-entity-type').value.trim(),
    entityId: $('#f-entity-id').value.trim(),
    from: fromInput($('#f-from').value),
    to: fromInput($('#f-to').value),
    // Set only by chart bars: kept until cleared.
    departmentId: state.filters.departmentId,
    location: state.filters.location,
  };
  return Object.fromEntries(Object.entries(keep).filter(([, v]) => v));
}

async function search(filters) {
  state.filters = filters;
  fillSearchForm();
  const seq = ++state.seq;
  state.cursor = null;
  $('#activities tbody').replaceChildren();
  document.body.dataset.state = 'loading';
  showError('');
  try {
    await loadActivities(seq);
    if (seq === state.seq) document.body.dataset.state = 'ready';
  } catch (err) {
    if (seq !== state.seq) return;
    showError(explain(err));
    document.body.dataset.state = 'error';
  }
}

// A click on a bar lists the activities behind it, within the period shown.
function drill(event) {
  const bar = event.target.closest('.bar[data-drill]');
  if (!bar) return;
  const { drill: filter, key, from, to } = bar.dataset;
  const next = filter === 'time' ? { from, to } : { [filter]: key };
  // A user or department replaces the other: the listing has one path subject.
  const { userId, departmentId, ...kept } = state.filters;
  const subject = filter === 'userId' || filter === 'departmentId' ? {} : { userId, departmentId };
  search(Object.fromEntries(Object.entries({ ...kept, ...subject, ...next }).filter(([, v]) => v)));
  $('#recent-title').scrollIntoView({ block: 'start' });
}

async function openEntity(type, id) {
  state.entity = { type, id };
  state.entityCursor = null;
  document.body.dataset.view = 'entity';
  $('#entity-page').hidden = false;
  $('#entity-title').textContent = `History of ${type} ${id}`;
  $('#entity-activities tbody').replaceChildren();
  window.scrollTo(0, 0);
  await loadEntity();
}

async function loadEntity() {
  const { type, id } = state.entity;
  const params = new URLSearchParams({ since: '3650d', limit: '50' });
  if (state.entityCursor) params.set('cursor', state.entityCursor);
  document.body.dataset.state = 'loading';
  try {
    const page = await api(`/v1/entities/${encodeURIComponent(type)}/${encodeURIComponent(id)}/activities?${params}`);
    const body = $('#entity-activities tbody');
    for (const a of page.activities) body.append(row(a));
    state.entityCursor = page.nextCursor;
    $('#entity-more').hidden = !page.nextCursor;
    $('#entity-status').textContent = `${body.rows.length}${page.nextCursor ? '+' : ''} activities touched ${type} ${id}, newest first.`;
    document.body.dataset.state = 'ready';
  } catch (err) {
    showError(explain(err));
    document.body.dataset.state = 'error';
  }
}

function closeEntity() {
  delete document.body.dataset.view;
  $('#entity-page').hidden = true;
  state.entity = null;
}

function exportParams(format) {
  const kind = $('#scope-kind').value;
  const params = new URLSearchParams({ format, since: $('#period').value });
  params.set(kind === 'users' ? 'userId' : 'departmentId', $('#scope-id').value);
  return params;
}

async function download(format) {
  const status = $('#audit-status');
  status.textContent = 'Preparing the export…';
  try {
    const response = await request(`/v1/export?${exportParams(format)}`);
    const blob = await response.blob();
    const link = document.createElement('a');
    link.href = URL.createObjectURL(blob);
    link.download = `activities-${$('#scope-id').value}.${format}`;
    link.click();
    URL.revokeObjectURL(link.href);
    status.textContent = `Exported ${format.toUpperCase()} (${blob.size} bytes).`;
  } catch (err) {
    status.textContent = explain(err);
  }
}

async function verifyServer() {
  const status = $('#audit-status');
  status.textContent = 'Verifying the hash chain…';
  try {
    const v = await api('/v1/audit/verify');
    status.dataset.result = v.ok ? 'ok' : 'broken';
    status.textContent = v.ok
      ? `The chain verifies: ${v.verified} records, sequence ${v.anchorSeq + 1} to ${v.headSeq}.`
      : `The chain is broken at sequence ${v.firstBadSeq}: ${v.reason}`;
  } catch (err) {
    status.textContent = explain(err);
  }
}

async function verifyFile(file) {
  const status = $('#audit-status');
  const v = JSON.parse(verifyExport(await file.text()));
  status.dataset.result = v.ok ? 'ok' : 'broken';
  status.textContent = v.ok
    ? `${file.name}: ${v.records} records, every hash matches; ${v.links} links checked${v.contiguous ? '' : ' (a filtered export: gaps between records are expected)'}.`
    : `${file.name}: tampered at sequence ${v.firstBadSeq ?? '?'}: ${v.reason}`;
}

async function main() {
  await init({ module_or_path: '/pkg/crm_web_bg.wasm' });
  $('#sign-in-form').addEventListener('submit', (e) => {
    e.preventDefault();
    signIn($('#key').value.trim());
  });
  $('#sign-out').addEventListener('click', signOut);
  $('#scope-kind').addEventListener('change', () => { fillScopes(); refresh(); });
  for (const sel of ['#scope-id', '#period', '#group-by', '#tz']) $(sel).addEventListener('change', refresh);
  $('#more').addEventListener('click', async () => {
    try { await loadActivities(state.seq); } catch (err) { showError(explain(err)); }
  });
  $('#search').addEventListener('submit', (e) => { e.preventDefault(); search(readSearchForm()); });
  $('#f-clear').addEventListener('click', () => search({}));
  $('.charts').addEventListener('click', drill);
  $('#entity-more').addEventListener('click', loadEntity);
  $('#entity-back').addEventListener('click', closeEntity);
  $('#export-ndjson').addEventListener('click', () => download('ndjson'));
  $('#export-csv').addEventListener('click', () => download('csv'));
  $('#verify-server').addEventListener('click', verifyServer);
  $('#verify-file').addEventListener('change', (e) => { if (e.target.files[0]) verifyFile(e.target.files[0]); });
  // A dashboard link carries a viewer token in the fragment (never sent to the server
  // in URLs or logs); take it and clear it from the address bar.
  const fromLink = new URLSearchParams(location.hash.slice(1)).get('token');
  if (fromLink) {
    history.replaceState(null, '', location.pathname);
    state.key = fromLink;
  }
  if (state.key) await signIn(state.key);
}

main().catch((err) => showError(`The dashboard failed to start: ${err.message}`));
