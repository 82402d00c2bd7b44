// The site dashboard: one self-contained page (no external scripts, fonts or CDNs: a site network often
// has no Internet) that polls /admin/site/data.json and draws each host's and VM's Ganglia history as
// small SVG graphs, like the paper's Ganglia views, next to XSM's own state (health, placement).
// Text from the data is inserted with textContent only, never as HTML.

export const dashboardHtml = `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>XSM site</title>
<style>
body{font:14px system-ui,sans-serif;margin:1.5em;color:#222}
h1{font-size:1.3em;margin:0 0 .2em} h2{font-size:1.1em;margin:1.4em 0 .4em}
table{border-collapse:collapse} td,th{padding:.3em .6em;border-bottom:1px solid #ddd;text-align:left;vertical-align:middle}
th{font-weight:600;background:#f5f5f5} .bad{color:#b00020;font-weight:600} .warn{color:#a05a00;font-weight:600} .ok{color:#1b7f3b}
svg{display:block} .g{display:inline-block;margin-right:.6em;font-size:11px;color:#555} .muted{color:#777}
</style></head><body>
<h1>XSM site</h1><div id="meta" class="muted">loading…</div>
<p class="muted"><a href="/admin/queues">Job dashboard</a> (admin) · graphs: Ganglia history, newest right</p>
<h2>Hosts</h2><table id="hosts"><thead><tr><th>Host</th><th>Health</th><th>Heartbeat</th><th>Free / total MiB</th><th>VMs</th><th>History</th></tr></thead><tbody></tbody></table>
<h2>Virtual machines</h2><table id="vms"><thead><tr><th>VM</th><th>Set</th><th>Desired host</th><th>Running on</th><th>MEM / vCPUs</th><th>History</th></tr></thead><tbody></tbody></table>
<script>
"use strict";
const NS = 'http://www.w3.org/2000/svg';
function el(tag, text, cls) { const e = document.createElement(tag); if (text !== undefined) e.textContent = String(text); if (cls) e.className = cls; return e; }
function graph(label, pts) {
  const box = el('span', undefined, 'g');
  const w = 120, h = 32;
  const svg = document.createElementNS(NS, 'svg'); svg.setAttribute('width', w); svg.setAttribute('height', h);
  svg.setAttribute('role', 'img'); svg.setAttribute('aria-label', label);
  if (pts.length > 1) {
    const t0 = pts[0][0], t1 = pts[pts.length - 1][0] || t0 + 1;
    let lo = Infinity, hi = -Infinity; for (const p of pts) { lo = Math.min(lo, p[1]); hi = Math.max(hi, p[1]); }
    if (hi === lo) { hi += 1; lo -= 1; }
    const d = pts.map((p, i) => (i ? 'L' : 'M') + ((p[0] - t0) / Math.max(1, t1 - t0) * (w - 2) + 1).toFixed(1) + ',' + (h - 2 - (p[1] - lo) / (hi - lo) * (h - 4)).toFixed(1)).join('');
    const path = document.createElementNS(NS, 'path'); path.setAttribute('d', d); path.setAttribute('fill', 'none'); path.setAttribute('stroke', '#2b6cb0'); path.setAttribute('stroke-width', '1.5');
    svg.appendChild(path);
  }
  const last = pts.length ? pts[pts.length - 1][1] : undefined;
  box.appendChild(svg); box.appendChild(el('div', label + (last === undefined ? '' : ' ' + (Math.round(last * 10) / 10))));
  return box;
}
function graphs(g) { const td = el('td'); const names = Object.keys(g); if (!names.length) td.appendChild(el('span', 'no Ganglia data yet', 'muted')); for (const n of names) td.appendChild(graph(n, g[n])); return td; }
function row(cells) { const tr = el('tr'); for (const c of cells) tr.appendChild(c instanceof Node ? c : el('td', c)); return tr; }
async function refresh() {
  try {
    const r = await fetch('/admin/site/data.json', { credentials: 'same-origin' });
    if (!r.ok) throw new Error('HTTP ' + r.status + (r.status === 401 || r.status === 403 ? ': log in at /admin/login' : ''));
    const d = await r.json();
    document.getElementById('meta').textContent = 'site version ' + (d.version || 'none') + ' · ' + d.hosts.length + ' hosts · ' + d.vms.length + ' VMs · ' + new Date(d.generatedAt).toLocaleTimeString();
    const hb = document.querySelector('#hosts tbody'); hb.replaceChildren();
    for (const h of d.hosts) {
      const health = el('td', h.health + (h.maintenance ? ' · maintenance' : ''), h.health === 'healthy' ? 'ok' : h.health === 'suspect' ? 'warn' : 'bad');
      if (h.healthDetail) health.title = h.healthDetail;
      hb.appendChild(row([el('td', h.name + (h.address && h.address !== h.name ? ' (' + h.address + ')' : '')), health, h.heartbeatAgeS === null ? 'never' : h.heartbeatAgeS + ' s ago', (h.freeMemMiB ?? '-') + ' / ' + (h.totalMemMiB ?? '-'), h.vms.length + (h.vms.length ? ': ' + h.vms.join(', ') : ''), graphs(h.graphs)]));
    }
    const vb = document.querySelector('#vms tbody'); vb.replaceChildren();
    for (const v of d.vms) {
      const ok = v.observedHosts.length === 1 && v.observedHosts[0] === v.desiredHost;
      vb.appendChild(row([v.name, v.set, v.desiredHost, el('td', v.observedHosts.join(', ') || 'not running', ok ? 'ok' : 'warn'), v.memMiB + ' MiB / ' + v.vcpus, graphs(v.graphs)]));
    }
  } catch (e) { document.getElementById('meta').textContent = 'cannot load: ' + e.message; }
}
refresh(); setInterval(refresh, 10000);
</script></body></html>`;
