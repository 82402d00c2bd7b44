// The site console: one self-contained page (no external scripts, fonts or CDNs: a site network often has
// no Internet, and the CSP allows only this page's one inline script). It reads /admin/site/data.json,
// follows jobs live through /admin/site/events (server-sent events), draws Ganglia history as inline SVG
// graphs with axes, units and a time range, warns of failed jobs and out-of-sync VMs, migrates or resizes
// a VM, and drains or undrains a host: the plan first (a dry run), disruptive actions marked, consent asked
// before anything is stored.
// Text from the data is inserted with textContent only, never as HTML.

const STYLE = `
*{box-sizing:border-box}
body{font:15px/1.4 system-ui,sans-serif;margin:0;color:#1f2328;background:#f6f8fa}
header{display:flex;flex-wrap:wrap;gap:.5em 1.2em;align-items:center;justify-content:space-between;padding:.7em 1.2em;background:#151a21;color:#e6edf3}
header h1{font-size:1.2em;margin:0} header nav{display:flex;gap:1em;align-items:center;flex-wrap:wrap}
header a{color:#9ec5ff} header button{background:none;border:1px solid #6e7681;color:#e6edf3;border-radius:6px;padding:.25em .7em;font:inherit;cursor:pointer}
main{padding:.6em 1.2em 2em;max-width:1200px;margin:0 auto}
h2{font-size:1.1em;margin:1.3em 0 .5em} .muted{color:#57606a}
table{border-collapse:collapse;width:100%;background:#fff;border:1px solid #d0d7de;border-radius:8px}
td,th{padding:.4em .6em;border-bottom:1px solid #d8dee4;text-align:left;vertical-align:middle}
th{font-weight:600;background:#eef1f4}
.bad{color:#b00020;font-weight:600} .warn{color:#8a4b00;font-weight:600} .ok{color:#1a7f37;font-weight:600}
button.act{font:inherit;font-size:.9em;padding:.3em .7em;margin:.1em .3em .1em 0;border-radius:6px;border:1px solid #1f5fbf;background:#fff;color:#1f5fbf;cursor:pointer}
button.primary{background:#1f5fbf;color:#fff} button:disabled{opacity:.55;cursor:not-allowed}
.banner{padding:.6em .9em;border-radius:8px;margin:.5em 0;border:1px solid}
.banner.bad{background:#ffebe9;border-color:#ff8182} .banner.warn{background:#fff8c5;border-color:#d4a72c}
.banner.ok{background:#dafbe1;border-color:#4ac26b}
#jobs{list-style:none;padding:0;margin:0} #jobs li{background:#fff;border:1px solid #d0d7de;border-radius:6px;padding:.4em .6em;margin:.3em 0}
progress{width:8em;vertical-align:middle}
#graph{background:#fff;border:1px solid #d0d7de;border-radius:8px;padding:.6em .9em;margin-top:1em}
.charts{display:grid;grid-template-columns:repeat(auto-fill,minmax(300px,1fr));gap:1em}
svg.chart{width:100%;height:auto;display:block} svg.chart text{font-size:11px;fill:#424a53}
.range button[aria-pressed=true]{background:#1f5fbf;color:#fff}
dialog{border:1px solid #d0d7de;border-radius:10px;max-width:34em;width:calc(100% - 2em);padding:1em 1.2em}
dialog::backdrop{background:rgba(0,0,0,.35)} select,input[type=number]{font:inherit;padding:.3em;margin:.3em 0;max-width:7em}
.plan{padding-left:1.2em} .plan li{margin:.3em 0} .disruptive{color:#b00020;font-weight:600}
.tag{display:inline-block;font-size:.8em;font-weight:700;padding:0 .4em;border-radius:4px;background:#b00020;color:#fff;margin-right:.4em}
.tag.live{background:#1a7f37}
@media (max-width:700px){
 main{padding:.5em .6em 2em} table,thead,tbody,tr,td{display:block;width:100%} thead{position:absolute;left:-9999px}
 tr{border-bottom:2px solid #d0d7de;padding:.3em 0} td{border:0;padding:.2em .6em}
 td::before{content:attr(data-label);display:inline-block;min-width:8.5em;font-weight:600;color:#57606a}
 .charts{grid-template-columns:1fr}
}`;

const SCRIPT = `
"use strict";
const NS = 'http://www.w3.org/2000/svg';
const $ = (id) => document.getElementById(id);
const state = { data: null, progress: null, you: null, graph: null, range: 3600e3, following: null };
const UNITS = { load_one: '', cpu_idle: '%', mem_free: 'KiB', xen_free_mem: 'MiB', vm_count: 'VMs', bytes_in: 'bytes/s', bytes_out: 'bytes/s', vm_cpu_pct: '%', vm_mem_used: 'MiB', vm_vcpus_online: 'vCPUs' };
const TITLES = { load_one: 'Load (1 min)', cpu_idle: 'CPU idle', mem_free: 'Free memory', xen_free_mem: 'Xen free memory', vm_count: 'Running VMs', bytes_in: 'Network in', bytes_out: 'Network out', vm_cpu_pct: 'CPU use', vm_mem_used: 'Memory', vm_vcpus_online: 'vCPUs online' };
function el(tag, text, cls) { const e = document.createElement(tag); if (text !== undefined) e.textContent = String(text); if (cls) e.className = cls; return e; }
function svgEl(tag, attrs) { const e = document.createElementNS(NS, tag); for (const k in attrs) e.setAttribute(k, String(attrs[k])); return e; }
function svgText(x, y, text, anchor, cls) { const t = svgEl('text', { x: x, y: y, 'text-anchor': anchor || 'middle' }); if (cls) t.setAttribute('class', cls); t.textContent = text; return t; }
function unitOf(units, name) { const u = (units && units[name]) || UNITS[name] || ''; return u.trim(); }
function fmt(v) { const a = Math.abs(v); if (a >= 1e9) return (v / 1e9).toFixed(1) + 'G'; if (a >= 1e6) return (v / 1e6).toFixed(1) + 'M'; if (a >= 1e4) return (v / 1e3).toFixed(0) + 'k'; if (a >= 100 || v === Math.round(v)) return String(Math.round(v)); return v.toFixed(a >= 10 ? 1 : 2); }
// Round tick steps (1, 2, 5 x 10^n) covering lo..hi in about n steps.
function ticks(lo, hi, n) { const raw = (hi - lo) / n || 1; const p = Math.pow(10, Math.floor(Math.log10(raw))); const step = [1, 2, 5, 10].map((m) => m * p).find((s) => s >= raw); const out = []; let v = Math.floor(lo / step) * step; for (; v < hi - step * 1e-9; v += step) out.push(+v.toFixed(10)); out.push(+v.toFixed(10)); return out; }
function clock(ms, span) { const d = new Date(ms); const p = (x) => String(x).padStart(2, '0'); return p(d.getHours()) + ':' + p(d.getMinutes()) + (span < 10 * 60e3 ? ':' + p(d.getSeconds()) : ''); }
// A line graph with a y axis (ticks, unit), an x axis (clock times) and a mark at every point.
function chart(name, unit, pts) {
  const W = 360, H = 170, L = 48, R = 10, T = 22, B = 28;
  const title = (TITLES[name] || name) + (unit ? ' (' + unit + ')' : '');
  const last = pts.length ? pts[pts.length - 1][1] : undefined;
  const svg = svgEl('svg', { viewBox: '0 0 ' + W + ' ' + H, class: 'chart', role: 'img', 'data-metric': name, 'data-points': pts.length, 'aria-label': title + ': ' + pts.length + ' points' + (last === undefined ? '' : ', latest ' + fmt(last) + (unit ? ' ' + unit : '')) });
  svg.appendChild(svgText(L, 14, title, 'start', 'title'));
  if (!pts.length) { svg.appendChild(svgText(W / 2, H / 2, 'no data in this range')); return svg; }
  const t0 = pts[0][0], t1 = Math.max(pts[pts.length - 1][0], t0 + 1000);
  let lo = Infinity, hi = -Infinity; for (const p of pts) { lo = Math.min(lo, p[1]); hi = Math.max(hi, p[1]); }
  if (unit === '%') { lo = Math.min(lo, 0); hi = Math.max(hi, 100); } else { lo = Math.min(lo, 0); }
  if (hi === lo) hi = lo + 1;
  const ys = ticks(lo, hi, 4); lo = Math.min(lo, ys[0]); hi = Math.max(hi, ys[ys.length - 1]);
  const x = (t) => L + (t - t0) / (t1 - t0) * (W - L - R), y = (v) => H - B - (v - lo) / (hi - lo) * (H - T - B);
  const yAxis = svgEl('g', { class: 'axis y' });
  for (const v of ys) { yAxis.appendChild(svgEl('line', { x1: L, x2: W - R, y1: y(v), y2: y(v), stroke: '#e1e4e8' })); yAxis.appendChild(svgText(L - 5, y(v) + 4, fmt(v), 'end', 'tick')); }
  yAxis.appendChild(svgEl('line', { x1: L, x2: L, y1: T, y2: H - B, stroke: '#57606a' }));
  const xAxis = svgEl('g', { class: 'axis x' });
  xAxis.appendChild(svgEl('line', { x1: L, x2: W - R, y1: H - B, y2: H - B, stroke: '#57606a' }));
  const n = 3; for (let i = 0; i <= n; i++) { const t = t0 + (t1 - t0) * i / n; xAxis.appendChild(svgEl('line', { x1: x(t), x2: x(t), y1: H - B, y2: H - B + 4, stroke: '#57606a' })); xAxis.appendChild(svgText(x(t), H - B + 16, clock(t, t1 - t0), i === 0 ? 'start' : i === n ? 'end' : 'middle', 'tick')); }
  svg.appendChild(yAxis); svg.appendChild(xAxis);
  svg.appendChild(svgEl('path', { d: pts.map((p, i) => (i ? 'L' : 'M') + x(p[0]).toFixed(1) + ',' + y(p[1]).toFixed(1)).join(''), fill: 'none', stroke: '#1f5fbf', 'stroke-width': 1.6 }));
  const dots = svgEl('g', { class: 'points' });
  for (const p of pts) dots.appendChild(svgEl('circle', { cx: x(p[0]).toFixed(1), cy: y(p[1]).toFixed(1), r: pts.length > 90 ? 1 : 2, fill: '#1f5fbf', class: 'pt' }));
  svg.appendChild(dots);
  return svg;
}
function cell(label, content, cls) { const td = el('td', undefined, cls); td.setAttribute('data-label', label); if (content instanceof Node) td.appendChild(content); else td.textContent = String(content); return td; }
function button(text, onClick, cls) { const b = el('button', text, 'act' + (cls ? ' ' + cls : '')); b.type = 'button'; b.addEventListener('click', onClick); return b; }
async function api(method, path, body) {
  const r = await fetch(path, { method: method, credentials: 'same-origin', headers: body ? { 'content-type': 'application/json', accept: 'application/json' } : { accept: 'application/json' }, body: body ? JSON.stringify(body) : undefined });
  let j = null; try { j = await r.json(); } catch (e) { j = null; }
  return { status: r.status, body: j };
}
function drawHosts(d) {
  const tb = document.querySelector('#hosts tbody'); tb.replaceChildren();
  const mayChange = state.you && state.you.role !== 'viewer';
  for (const h of d.hosts) {
    const tr = el('tr'); tr.setAttribute('data-host', h.name);
    tr.appendChild(cell('Host', h.name + (h.address && h.address !== h.name ? ' (' + h.address + ')' : '')));
    const health = cell('Health', h.health + (h.maintenance ? ' · maintenance' : ''), h.health === 'healthy' ? 'ok' : h.health === 'suspect' ? 'warn' : 'bad');
    if (h.healthDetail) health.title = h.healthDetail;
    tr.appendChild(health);
    tr.appendChild(cell('Heartbeat', h.heartbeatAgeS === null ? 'never' : h.heartbeatAgeS + ' s ago'));
    tr.appendChild(cell('Memory free', h.freeMemMiB === undefined ? '-' : h.freeMemMiB + ' of ' + h.totalMemMiB + ' MiB'));
    tr.appendChild(cell('CPUs', h.cpus === undefined ? '-' : h.cpus));
    tr.appendChild(cell('VMs', h.vms.length + (h.vms.length ? ': ' + h.vms.join(', ') : '')));
    const acts = el('span'); acts.appendChild(button('Graphs', () => openGraph('host', h.name)));
    if (mayChange) acts.appendChild(h.maintenance ? button('Undrain…', () => openDrain(h, 'undrain')) : button('Drain…', () => openDrain(h, 'drain')));
    tr.appendChild(cell('Actions', acts));
    tb.appendChild(tr);
  }
}
function drawVms(d) {
  const tb = document.querySelector('#vms tbody'); tb.replaceChildren();
  const mayChange = state.you && state.you.role !== 'viewer';
  for (const v of d.vms) {
    const tr = el('tr'); tr.setAttribute('data-vm', v.name);
    tr.appendChild(cell('VM', v.name));
    tr.appendChild(cell('Set', v.set));
    tr.appendChild(cell('Desired host', v.desiredHost));
    tr.appendChild(cell('Running on', v.observedHosts.join(', ') || 'not running'));
    tr.appendChild(cell('State', v.inSync ? 'in sync' : 'out of sync', v.inSync ? 'ok sync' : 'warn sync'));
    tr.appendChild(cell('MEM / vCPUs', v.memMiB + ' MiB / ' + v.vcpus));
    const acts = el('span');
    acts.appendChild(button('Graphs', () => openGraph('vm', v.name)));
    if (mayChange) { acts.appendChild(button('Migrate…', () => openChange(v, 'migrate'))); acts.appendChild(button('Resize…', () => openChange(v, 'reconfigure'))); }
    tr.appendChild(cell('Actions', acts));
    tb.appendChild(tr);
  }
}
function banner(cls, text) { const b = el('div', text, 'banner ' + cls); b.setAttribute('role', cls === 'bad' ? 'alert' : 'status'); return b; }
function drawBanners() {
  const box = $('banners'); box.replaceChildren();
  const d = state.data, p = state.progress;
  if (p) {
    const hour = Date.now() - 3600e3;
    const failed = p.failed.filter((j) => j.version === undefined ? Date.parse(j.finishedAt || j.createdAt) > hour : j.version === p.version);
    if (failed.length) box.appendChild(banner('bad', failed.length + ' failed job' + (failed.length === 1 ? '' : 's') + ': ' + failed.map((j) => j.id + ' (' + (j.failedReason || 'failed') + ')').join('; ') + '. See the job list below' + (isAdmin() ? ' or the job dashboard.' : '.')));
  }
  if (d) {
    const out = d.vms.filter((v) => !v.inSync);
    const applying = p && p.apply && p.apply.state === 'applying';
    if (out.length) box.appendChild(banner('warn', out.length + ' VM' + (out.length === 1 ? ' is' : 's are') + ' out of sync: ' + out.map((v) => v.name).join(', ') + (applying ? ' (version ' + p.version + ' is being applied)' : ' (what runs differs from version ' + d.version + ')')));
  }
  if (state.following) {
    const f = state.following;
    const done = p && p.converged >= f.version && d && d.version >= f.version && d.vms.every((v) => v.inSync);
    const b = banner(done ? 'ok' : 'warn', done ? f.what + ': version ' + f.version + ' converged, every VM in sync.' : f.what + ': version ' + f.version + ' is being applied…');
    b.id = 'following'; b.setAttribute('data-done', done ? 'yes' : 'no'); box.appendChild(b);
  }
}
function isAdmin() { return state.you && state.you.role === 'admin'; }
function jobLine(j) {
  const li = el('li'); const pr = j.progress || {};
  li.appendChild(el('strong', j.name + (j.vm ? ' ' + j.vm : '')));
  li.appendChild(document.createTextNode(' · ' + j.queue + ' · ' + j.state + (pr.step ? ' · step ' + pr.step + ' (' + pr.index + '/' + pr.total + ')' : '')));
  if (pr.total) { const bar = el('progress'); bar.max = pr.total; bar.value = j.state === 'completed' ? pr.total : Math.max(0, (pr.index || 1) - 1); bar.setAttribute('aria-label', 'progress of ' + j.id); li.appendChild(document.createTextNode(' ')); li.appendChild(bar); }
  if (j.failedReason) li.appendChild(el('div', j.failedReason, 'bad'));
  if (j.state === 'failed' && state.you && state.you.role !== 'viewer') li.appendChild(button('Retry', () => retry(j)));
  return li;
}
function drawJobs() {
  const p = state.progress; if (!p) return;
  const ul = $('jobs'); ul.replaceChildren();
  const list = p.running.concat(p.failed.filter((j) => j.version === p.version), p.finished).slice(0, 12);
  if (!list.length) ul.appendChild(el('li', 'no jobs yet', 'muted'));
  for (const j of list) ul.appendChild(jobLine(j));
  $('applystate').textContent = 'version ' + p.version + (p.apply ? ': ' + p.apply.state + (p.apply.summary ? ' (' + p.apply.summary + ')' : '') : '') + (p.converged < p.version ? ' · last converged: ' + (p.converged || 'none') : '');
}
// A failed job resumes at the step it failed in; the API refuses one a newer version superseded.
async function retry(j) {
  const r = await api('POST', '/api/jobs/' + encodeURIComponent(j.queue) + '/' + encodeURIComponent(j.id) + '/retry');
  $('jobmsg').textContent = r.status === 202 ? 'retrying ' + j.id : 'cannot retry ' + j.id + ': ' + (r.body && r.body.error ? r.body.error.message : 'HTTP ' + r.status);
}
async function refresh() {
  try {
    const r = await fetch('/admin/site/data.json?points=' + (state.graph ? 720 : 2), { credentials: 'same-origin' });
    if (!r.ok) throw new Error('HTTP ' + r.status + (r.status === 401 || r.status === 403 ? ': log in at /admin/login' : ''));
    const d = await r.json(); state.data = d; state.you = d.you;
    $('queues').hidden = !isAdmin();
    $('meta').textContent = 'site version ' + (d.version || 'none') + ' · ' + d.hosts.length + ' hosts · ' + d.vms.length + ' VMs · ' + (d.you ? d.you.name + ' (' + d.you.role + ')' : '') + ' · ' + new Date(d.generatedAt).toLocaleTimeString();
    drawHosts(d); drawVms(d); drawBanners(); drawGraph();
  } catch (e) { $('meta').textContent = 'cannot load: ' + e.message; }
}
let pending = null;
function refreshSoon() { if (!pending) pending = setTimeout(() => { pending = null; refresh(); }, 150); }
function openGraph(kind, name) { state.graph = { kind: kind, name: name }; $('graph').hidden = false; refresh().then(() => $('graph-title').scrollIntoView({ block: 'start' })); }
function drawGraph() {
  const g = state.graph, d = state.data; if (!g || !d) return;
  const item = (g.kind === 'vm' ? d.vms : d.hosts).find((x) => x.name === g.name);
  $('graph-title').textContent = (g.kind === 'vm' ? 'VM ' : 'Host ') + g.name;
  const box = $('charts'); box.replaceChildren();
  const names = item ? Object.keys(item.graphs) : [];
  if (!names.length) box.appendChild(el('p', 'No Ganglia data yet for ' + g.name + '.', 'muted'));
  const from = d.generatedAt - state.range;
  for (const n of names) box.appendChild(chart(n, unitOf(item.units, n), item.graphs[n].filter((p) => p[0] >= from)));
}
function setRange(ms) { state.range = ms; for (const b of document.querySelectorAll('.range button')) b.setAttribute('aria-pressed', String(Number(b.getAttribute('data-ms')) === ms)); drawGraph(); }
// Migrating: the dry run's plan first, disruptive actions marked; consent asked where the plan needs it.
function planList(actions, disruptive) {
  const ids = new Set(disruptive.map((a) => a.id));
  const ol = el('ol', undefined, 'plan');
  for (const a of actions) {
    const li = el('li', undefined, ids.has(a.id) ? 'disruptive' : '');
    li.appendChild(el('span', ids.has(a.id) ? 'DISRUPTIVE' : 'no downtime', 'tag' + (ids.has(a.id) ? '' : ' live')));
    li.appendChild(document.createTextNode(a.id + (a.mode ? ' (' + a.mode + ')' : '') + ': ' + (a.disruption || a.reason || '')));
    ol.appendChild(li);
  }
  return ol;
}
function drawPlan(actions, disruptive) {
  $('mig-plan').replaceChildren(planList(actions, disruptive));
  $('mig-consent-row').hidden = !disruptive.length; $('mig-consent').checked = false;
  $('mig-go').disabled = disruptive.length > 0;
}
// One dialog for both operations: what differs is the route, the body and the words.
const mig = { vm: null, kind: 'migrate' };
function changeBody() {
  if (mig.kind === 'migrate') return { to: $('mig-to').value };
  const b = {}, mem = Number($('rs-mem').value), vcpus = Number($('rs-vcpus').value);
  if (mem && mem !== mig.vm.memMiB) b.memMiB = mem;
  if (vcpus && vcpus !== mig.vm.vcpus) b.vcpus = vcpus;
  return b;
}
function changeWords(b) { return mig.kind === 'migrate' ? 'migrate ' + mig.vm.name + ' to ' + b.to : 'resize ' + mig.vm.name + ' to ' + (b.memMiB || mig.vm.memMiB) + ' MiB, ' + (b.vcpus || mig.vm.vcpus) + ' vCPUs'; }
function openChange(v, kind) {
  mig.vm = v; mig.kind = kind;
  $('mig-title').textContent = kind === 'migrate' ? 'Migrate ' + v.name + ' from ' + v.desiredHost : 'Resize ' + v.name + ' (now ' + v.memMiB + ' MiB, ' + v.vcpus + ' vCPUs)';
  $('mig-go').textContent = kind === 'migrate' ? 'Migrate' : 'Resize';
  $('chg-migrate').hidden = kind !== 'migrate'; $('chg-resize').hidden = kind === 'migrate';
  const sel = $('mig-to'); sel.replaceChildren();
  for (const h of state.data.hosts) if (h.name !== v.desiredHost) { const o = el('option', h.name); o.value = h.name; sel.appendChild(o); }
  $('rs-mem').value = v.memMiB; $('rs-vcpus').value = v.vcpus;
  $('mig-msg').textContent = ''; $('mig-plan').replaceChildren(); $('mig-go').disabled = true; $('mig-consent-row').hidden = true;
  $('migrate').showModal();
  if (kind === 'migrate') previewChange(); else $('mig-msg').textContent = 'Change the size, then Show plan.';
}
const opPath = () => '/api/vms/' + encodeURIComponent(mig.vm.name) + '/' + mig.kind;
async function previewChange() {
  const b = changeBody(); $('mig-go').disabled = true; $('mig-plan').replaceChildren();
  if (!Object.keys(b).length) { $('mig-msg').textContent = 'Nothing to change.'; return; }
  $('mig-msg').textContent = 'planning…';
  const r = await api('POST', opPath(), Object.assign({ dryRun: true }, b));
  if (r.status !== 200) { $('mig-msg').textContent = 'cannot plan: ' + (r.body && r.body.error ? r.body.error.message : 'HTTP ' + r.status); return; }
  if (!r.body.plan.actions.length) { $('mig-msg').textContent = 'Nothing to do: this is what the site says already.'; return; }
  drawPlan(r.body.plan.actions, r.body.disruptive);
  $('mig-msg').textContent = r.body.disruptive.length ? 'This plan stops running VMs: tick the box to consent.' : 'Nothing stops: the VM keeps running. ' + $('mig-go').textContent + ' to go ahead.';
}
async function goChange() {
  const b = changeBody(), consent = $('mig-consent').checked;
  $('mig-go').disabled = true; $('mig-msg').textContent = 'storing the new version…';
  const r = await api('POST', opPath(), consent ? Object.assign({ allowDisruption: true }, b) : b);
  if (r.status === 409 && r.body && r.body.error && r.body.error.code === 'consent-required') {
    const acts = r.body.error.details.actions; drawPlan(acts, acts);
    $('mig-msg').textContent = 'The plan changed and now stops running VMs: tick the box to consent, then try again.'; return;
  }
  if (r.status !== 202 && r.status !== 200) { $('mig-msg').textContent = 'refused: ' + (r.body && r.body.error ? r.body.error.message : 'HTTP ' + r.status); $('mig-go').disabled = false; return; }
  state.following = { version: r.body.version, what: changeWords(b) };
  $('migrate').close(); drawBanners(); refreshSoon();
}
// Draining (or undraining) a host: the same routes as xsm host drain|undrain. The pre-check (what moves
// where, what cannot move and why, what moves cold) and the plan come first; a blocker leaves nothing to
// press, and cold moves (they stop VMs) wait for the consent box.
const dr = { host: null, kind: 'drain' };
const drPath = () => '/api/hosts/' + encodeURIComponent(dr.host) + '/' + dr.kind;
const drBody = () => (dr.kind === 'undrain' && $('dr-return').checked ? { return: true } : {});
function openDrain(h, kind) {
  dr.host = h.name; dr.kind = kind;
  $('dr-title').textContent = kind === 'drain' ? 'Drain ' + h.name + ': maintenance, its VMs moved off' : 'Undrain ' + h.name + ': out of maintenance';
  $('dr-go').textContent = kind === 'drain' ? 'Drain' : 'Undrain';
  $('dr-return-row').hidden = kind !== 'undrain'; $('dr-return').checked = true;
  $('drain').showModal(); previewDrain();
}
function drawCheck(b) {
  const ul = el('ul', undefined, 'plan');
  for (const m of b.moves) { const li = el('li', undefined, 'move' + (m.live ? '' : ' disruptive')); li.appendChild(el('span', m.live ? 'live' : 'COLD', 'tag' + (m.live ? ' live' : ''))); li.appendChild(document.createTextNode(m.vm + ': ' + m.from + ' → ' + m.to + ' (' + m.memMiB + ' MiB)')); ul.appendChild(li); }
  for (const x of b.blockers) ul.appendChild(el('li', (dr.kind === 'drain' ? 'cannot move ' : 'stays: ') + x.vm + ': ' + x.why, dr.kind === 'drain' ? 'blocker bad' : 'blocker muted'));
  for (const c of b.cold) ul.appendChild(el('li', 'cold move ' + c.vm + ': ' + c.why, 'cold disruptive'));
  if (!ul.children.length) ul.appendChild(el('li', 'no VMs to move', 'muted'));
  $('dr-check').replaceChildren(ul);
}
async function previewDrain() {
  $('dr-go').disabled = true; $('dr-consent-row').hidden = true; $('dr-consent').checked = false;
  $('dr-check').replaceChildren(); $('dr-plan').replaceChildren(); $('dr-msg').textContent = 'checking…';
  const r = await api('POST', drPath(), Object.assign({ dryRun: true }, drBody()));
  if (r.status !== 200) { $('dr-msg').textContent = 'cannot check: ' + (r.body && r.body.error ? r.body.error.message : 'HTTP ' + r.status); return; }
  drawCheck(r.body);
  $('dr-plan').replaceChildren(planList(r.body.plan.actions, r.body.disruptive));
  if (dr.kind === 'drain' && r.body.blockers.length) { $('dr-msg').textContent = 'This drain would be refused: every VM must be able to leave first (see above).'; return; }
  const stops = r.body.disruptive.length > 0 || r.body.cold.length > 0;
  $('dr-consent-row').hidden = !stops; $('dr-go').disabled = stops;
  $('dr-msg').textContent = stops ? 'This stops running VMs (cold moves): tick the box to consent.' : 'Nothing stops: every VM moves live. ' + $('dr-go').textContent + ' to go ahead.';
}
async function goDrain() {
  const consent = $('dr-consent').checked, body = drBody();
  $('dr-go').disabled = true; $('dr-msg').textContent = 'storing the new version…';
  const r = await api('POST', drPath(), consent ? Object.assign({ allowDisruption: true }, body) : body);
  if (r.status === 409 && r.body && r.body.error && r.body.error.code === 'consent-required') {
    const acts = r.body.error.details.actions; $('dr-plan').replaceChildren(planList(acts, acts));
    $('dr-consent-row').hidden = false; $('dr-msg').textContent = 'The plan changed and now stops running VMs: tick the box to consent, then try again.'; return;
  }
  if (r.status !== 202 && r.status !== 200) { $('dr-msg').textContent = 'refused: ' + (r.body && r.body.error ? r.body.error.message : 'HTTP ' + r.status); $('dr-go').disabled = false; return; }
  if (r.body.version !== undefined && !r.body.unchanged) state.following = { version: r.body.version, what: dr.kind + ' ' + dr.host };
  $('drain').close(); drawBanners(); refreshSoon();
}
function listen() {
  if (!window.EventSource) { setInterval(refresh, 3000); return; }
  const es = new EventSource('/admin/site/events');
  es.addEventListener('progress', (ev) => {
    const p = JSON.parse(ev.data), old = state.progress; state.progress = p;
    $('live').textContent = 'live';
    drawJobs(); drawBanners();
    if (!old || old.version !== p.version || old.converged !== p.converged || old.running.length !== p.running.length || JSON.stringify(old.running) !== JSON.stringify(p.running)) refreshSoon();
  });
  es.addEventListener('error', () => { $('live').textContent = 'live updates interrupted; reconnecting…'; });
}
$('mig-to').addEventListener('change', previewChange);
$('rs-plan').addEventListener('click', previewChange);
$('mig-consent').addEventListener('change', () => { $('mig-go').disabled = !$('mig-consent').checked; });
$('mig-go').addEventListener('click', goChange);
$('dr-return').addEventListener('change', previewDrain);
$('dr-consent').addEventListener('change', () => { $('dr-go').disabled = !$('dr-consent').checked; });
$('dr-go').addEventListener('click', goDrain);
$('dr-cancel').addEventListener('click', () => $('drain').close());
$('mig-cancel').addEventListener('click', () => $('migrate').close());
$('graph-close').addEventListener('click', () => { state.graph = null; $('graph').hidden = true; });
for (const b of document.querySelectorAll('.range button')) b.addEventListener('click', () => setRange(Number(b.getAttribute('data-ms'))));
setRange(state.range);
refresh(); listen(); setInterval(refresh, 10000);
`;

const RANGES: [string, number][] = [
  ['5 min', 5 * 60e3],
  ['1 h', 3600e3],
  ['6 h', 6 * 3600e3],
  ['3 days', 72 * 3600e3],
];

export const dashboardHtml = `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1">
<title>XSM site</title><style>${STYLE}</style></head><body>
<header><h1>XSM site</h1><nav aria-label="Console"><a id="queues" href="/admin/queues" hidden>Job dashboard</a><a href="/api/docs">API</a><form method="post" action="/admin/logout"><button>Log out</button></form></nav></header>
<main>
<p id="meta" class="muted">loading…</p>
<div id="banners"></div>
<section aria-labelledby="h-jobs"><h2 id="h-jobs">Jobs <span id="live" class="muted"></span></h2><p id="applystate" class="muted"></p><p id="jobmsg" role="status"></p><ul id="jobs"></ul></section>
<section aria-labelledby="h-hosts"><h2 id="h-hosts">Hosts</h2><table id="hosts"><thead><tr><th>Host</th><th>Health</th><th>Heartbeat</th><th>Memory free</th><th>CPUs</th><th>VMs</th><th>Actions</th></tr></thead><tbody></tbody></table></section>
<section aria-labelledby="h-vms"><h2 id="h-vms">Virtual machines</h2><table id="vms"><thead><tr><th>VM</th><th>Set</th><th>Desired host</th><th>Running on</th><th>State</th><th>MEM / vCPUs</th><th>Actions</th></tr></thead><tbody></tbody></table></section>
<section id="graph" hidden aria-labelledby="graph-title"><h2 id="graph-title">Graphs</h2>
<div class="range" role="group" aria-label="Time range">${RANGES.map(([t, ms]) => `<button type="button" class="act" data-ms="${ms}" aria-pressed="false">${t}</button>`).join('')}<button type="button" class="act" id="graph-close">Close</button></div>
<div id="charts" class="charts"></div><p class="muted">Ganglia history, newest right.</p></section>
</main>
<dialog id="migrate" aria-labelledby="mig-title"><h2 id="mig-title">Migrate</h2>
<p id="chg-migrate"><label for="mig-to">To host</label> <select id="mig-to"></select></p>
<p id="chg-resize" hidden><label for="rs-mem">Memory (MiB)</label> <input id="rs-mem" type="number" min="16" step="1" size="7"> <label for="rs-vcpus">vCPUs</label> <input id="rs-vcpus" type="number" min="1" max="512" size="4"> <button type="button" class="act" id="rs-plan">Show plan</button></p>
<h3>Plan</h3><div id="mig-plan"></div>
<p id="mig-consent-row" hidden><input type="checkbox" id="mig-consent"> <label for="mig-consent">I consent to the actions marked DISRUPTIVE (they stop running VMs)</label></p>
<p id="mig-msg" role="status"></p>
<p><button type="button" class="act primary" id="mig-go" disabled>Migrate</button><button type="button" class="act" id="mig-cancel">Cancel</button></p>
</dialog>
<dialog id="drain" aria-labelledby="dr-title"><h2 id="dr-title">Drain</h2>
<p id="dr-return-row" hidden><input type="checkbox" id="dr-return" checked> <label for="dr-return">Bring back the VMs that left in its drain (return)</label></p>
<h3>Pre-check</h3><div id="dr-check"></div>
<h3>Plan</h3><div id="dr-plan"></div>
<p id="dr-consent-row" hidden><input type="checkbox" id="dr-consent"> <label for="dr-consent">I consent to the cold moves marked COLD (they stop running VMs)</label></p>
<p id="dr-msg" role="status"></p>
<p><button type="button" class="act primary" id="dr-go" disabled>Drain</button><button type="button" class="act" id="dr-cancel">Cancel</button></p>
</dialog>
<script>${SCRIPT}</script></body></html>`;
