// A small Redfish BMC simulator on loopback for tests: one ComputerSystem with PowerState, a Reset
// action whose target is deliberately NOT the conventional path, and a Boot override guarded by ETag.
// Plain HTTP by default; with a key and certificate it serves HTTPS as a real BMC does.

import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createServer as createTlsServer } from 'node:https';
import type { AddressInfo } from 'node:net';

export interface RedfishSim {
  url: string;
  state: {
    power: 'On' | 'Off';
    boot: Record<string, string>;
    etag: number;
    requests: string[];
    /** Every Authorization header received, in order. */
    authorizations: string[];
  };
  close(): Promise<void>;
}

export async function startRedfishSim(
  user: string,
  password: string,
  opts: { tls?: { key: string; cert: string } } = {},
): Promise<RedfishSim> {
  const state: RedfishSim['state'] = {
    power: 'Off',
    boot: { BootSourceOverrideTarget: 'None', BootSourceOverrideEnabled: 'Disabled' },
    etag: 1,
    requests: [],
    authorizations: [],
  };
  const sys = '/redfish/v1/Systems/System.Embedded.1';
  const resetTarget = '/redfish/v1/Systems/System.Embedded.1/Actions/Custom/ComputerSystem.Reset';
  const handler = (req: IncomingMessage, res: ServerResponse) => {
    if (req.headers.authorization) state.authorizations.push(req.headers.authorization);
    let body = '';
    req.on('data', (d: Buffer) => (body += d.toString()));
    req.on('end', () => {
      state.requests.push(
        `${req.method} ${req.url}${req.headers['if-match'] ? ` If-Match:${req.headers['if-match']}` : ''}`,
      );
      const send = (code: number, obj?: unknown, headers: Record<string, string> = {}) => {
        res.writeHead(code, { 'Content-Type': 'application/json', ...headers });
        res.end(obj === undefined ? '' : JSON.stringify(obj));
      };
      const expected = 'Basic ' + Buffer.from(`${user}:${password}`).toString('base64');
      if (req.headers.authorization !== expected) return send(401, { error: { message: 'bad credentials' } });
      const url = (req.url ?? '').replace(/\/$/, '');
      if (req.method === 'GET' && url === '/redfish/v1')
        return send(200, { Systems: { '@odata.id': '/redfish/v1/Systems' } });
      if (req.method === 'GET' && url === '/redfish/v1/Systems') return send(200, { Members: [{ '@odata.id': sys }] });
      if (req.method === 'GET' && url === sys)
        return send(
          200,
          {
            PowerState: state.power,
            Boot: { ...state.boot, 'BootSourceOverrideTarget@Redfish.AllowableValues': ['None', 'Pxe', 'Hdd'] },
            Actions: {
              '#ComputerSystem.Reset': {
                target: resetTarget,
                'ResetType@Redfish.AllowableValues': ['On', 'ForceOff', 'ForceRestart'],
              },
            },
          },
          { ETag: `W/"${state.etag}"` },
        );
      if (req.method === 'PATCH' && url === sys) {
        if (req.headers['if-match'] !== `W/"${state.etag}"`) return send(412, { error: { message: 'ETag mismatch' } });
        const patch = JSON.parse(body) as { Boot?: Record<string, string> };
        state.boot = { ...state.boot, ...patch.Boot };
        state.etag++;
        return send(204);
      }
      if (req.method === 'POST' && url === resetTarget) {
        const { ResetType } = JSON.parse(body) as { ResetType: string };
        if (ResetType === 'On') state.power = 'On';
        else if (ResetType === 'ForceOff') state.power = 'Off';
        else return send(400, { error: { message: `ResetType ${ResetType} not allowed` } });
        return send(204);
      }
      send(404, { error: { message: `no resource ${url}` } });
    });
  };
  const server: Server = opts.tls ? createTlsServer(opts.tls, handler) : createServer(handler);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as AddressInfo).port;
  return {
    url: `${opts.tls ? 'https' : 'http'}://127.0.0.1:${port}`,
    state,
    close: () => new Promise((r) => server.close(() => r())),
  };
}
