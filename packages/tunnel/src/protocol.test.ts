import { describe, expect, it } from 'vitest';
import {
  checkBrokerUrl,
  endpointAllows,
  parseBrokerMessage,
  parseConnectorMessage,
  TunnelProtocolError,
  webSocketUrl,
} from './index.js';

const open = {
  type: 'open',
  streamId: 'stm_abcdefghijklmnop1234',
  grantToken: 'a.b.c',
  assetId: 'ast_01234567890123456789',
  host: '10.0.0.5',
  port: 22,
};

describe('control protocol', () => {
  it('accepts the frames it defines', () => {
    expect(parseBrokerMessage(JSON.stringify(open))).toEqual(open);
    const hello = {
      type: 'hello',
      protocol: 1,
      brokerInstance: 'brk_1',
      connectorId: 'con_01234567890123456789',
      zoneId: 'zon_01234567890123456789',
      heartbeatMs: 5000,
      replicas: ['http://127.0.0.1:8080', 'https://broker-2.example:8443'],
      assets: [{ assetId: 'ast_01234567890123456789', host: 'hmi-01.local', ports: [22, 502] }],
    };
    expect(parseBrokerMessage(JSON.stringify(hello))).toEqual(hello);
    expect(
      parseConnectorMessage(
        JSON.stringify({
          type: 'refused',
          streamId: open.streamId,
          code: 'wrong_zone',
          detail: 'x',
        }),
      ),
    ).toMatchObject({ code: 'wrong_zone' });
  });

  it('refuses anything else, with a protocol error', () => {
    const bad = [
      'not json',
      '[]',
      '{"type":"nope"}',
      JSON.stringify({ ...open, extra: 1 }),
      JSON.stringify({ ...open, port: 0 }),
      JSON.stringify({ ...open, port: 70000 }),
      JSON.stringify({ ...open, port: '22' }),
      JSON.stringify({ ...open, streamId: '../../etc' }),
      JSON.stringify({ ...open, host: 'a b' }),
      JSON.stringify({ ...open, grantToken: '' }),
      JSON.stringify({ type: 'replicas', replicas: ['ftp://x'] }),
      JSON.stringify({ type: 'assets', assets: [{ assetId: 'a', host: 'h', ports: [] }] }),
      'x'.repeat(2 * 1024 * 1024),
    ];
    for (const frame of bad)
      expect(() => parseBrokerMessage(frame), frame.slice(0, 80)).toThrow(TunnelProtocolError);
    expect(() =>
      parseConnectorMessage(
        JSON.stringify({ type: 'refused', streamId: open.streamId, code: 'x' }),
      ),
    ).toThrow(TunnelProtocolError);
    expect(() => parseConnectorMessage(JSON.stringify(open))).toThrow(TunnelProtocolError);
  });

  it('matches an endpoint by asset, host (case-insensitive) and listed port only', () => {
    const assets = [{ assetId: 'ast_a', host: 'HMI-01.local', ports: [22, 502] }];
    expect(endpointAllows(assets, 'ast_a', 'hmi-01.local', 22)).toBe(true);
    expect(endpointAllows(assets, 'ast_a', 'hmi-01.local', 502)).toBe(true);
    expect(endpointAllows(assets, 'ast_a', 'hmi-01.local', 23)).toBe(false);
    expect(endpointAllows(assets, 'ast_b', 'hmi-01.local', 22)).toBe(false);
    expect(endpointAllows(assets, 'ast_a', '10.0.0.9', 22)).toBe(false);
  });
});

describe('broker URL policy', () => {
  it('allows https anywhere and plain http on loopback only', () => {
    expect(checkBrokerUrl('https://broker.example:8443/').href).toBe(
      'https://broker.example:8443/',
    );
    for (const ok of ['http://127.0.0.1:8080', 'http://localhost:1', 'http://[::1]:8080'])
      expect(() => checkBrokerUrl(ok)).not.toThrow();
    for (const bad of [
      'http://10.0.0.1:8080',
      'http://broker.example',
      'ws://127.0.0.1',
      'https://user:pw@broker',
      'nonsense',
    ])
      expect(() => checkBrokerUrl(bad), bad).toThrow();
  });

  it('maps https to wss and http to ws', () => {
    expect(webSocketUrl(checkBrokerUrl('https://b.example/airlock/'), '/x')).toBe(
      'wss://b.example/airlock/x',
    );
    expect(webSocketUrl(checkBrokerUrl('http://127.0.0.1:9'), '/x')).toBe('ws://127.0.0.1:9/x');
  });
});
