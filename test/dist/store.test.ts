// Rendezvous store: key-value operations, waits, barriers, and the failure
// messages (which rank did not arrive, which rank died, which address is wrong).
import net from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { StoreClient, StoreServer } from '../../src/dist/store.js';
import { Op, encodeFrame } from '../../src/dist/store_protocol.js';

let server: StoreServer | undefined;
const clients: StoreClient[] = [];
afterEach(async () => {
  for (const c of clients.splice(0)) await c.close();
  await server?.close();
  server = undefined;
});

async function setup(world: number) {
  server = await StoreServer.listen(0, '127.0.0.1');
  for (let r = 0; r < world; r++)
    clients.push(await StoreClient.connect('127.0.0.1', server.port, { rank: r, worldSize: world, timeoutMs: 5000 }));
  return clients;
}

describe('rendezvous store', () => {
  it('set/get/check/add/delete, binary values', async () => {
    const [a, b] = await setup(2);
    const bytes = Uint8Array.from([0, 255, 1, 128, 10, 13]);
    await a.set('id', bytes);
    expect([...(await b.get('id'))]).toEqual([...bytes]);
    expect(await b.check(['id'])).toBe(true);
    expect(await b.check(['id', 'nope'])).toBe(false);
    expect(await a.add('n', 5)).toBe(5);
    expect(await b.add('n', -2)).toBe(3);
    expect((await a.get('n')).toString()).toBe('3');
    expect(await a.delete('id')).toBe(true);
    expect(await a.check(['id'])).toBe(false);
  });

  it('get and wait block until another client sets the keys', async () => {
    const [a, b] = await setup(2);
    const got = b.get('late');
    const waited = b.wait(['k1', 'k2']);
    await new Promise((r) => setTimeout(r, 50));
    await a.set('late', 'value');
    await a.set('k1', '1');
    await a.set('k2', '2');
    expect((await got).toString()).toBe('value');
    await waited;
  });

  it('barrier: all ranks pass, repeatedly', async () => {
    const cs = await setup(3);
    for (let i = 0; i < 3; i++) await Promise.all(cs.map((c) => c.barrier('epoch')));
  });

  it('barrier timeout names the ranks that did not arrive', async () => {
    const cs = await setup(3);
    const results = await Promise.allSettled([cs[0].barrier('x', 300), cs[1].barrier('x', 300)]);
    for (const r of results) {
      expect(r.status).toBe('rejected');
      expect((r as PromiseRejectedResult).reason.message).toMatch(/barrier 'x' timed out after 0.3 s on rank [01]: rank\(s\) 2 of 3 did not arrive/);
    }
  });

  it('get timeout names the missing key', async () => {
    const [a] = await setup(1);
    await expect(a.get('never', 200)).rejects.toThrow(/get\('never'\) timed out after 0.2 s: still missing never/);
  });

  it('a rank whose connection drops is reported at once, by rank', async () => {
    const [r0] = await setup(2);
    // Rank 1 announces itself, then its process "dies" (socket destroyed without a clean close).
    const raw = net.connect(server!.port, '127.0.0.1');
    await new Promise((r) => raw.once('connect', r));
    raw.write(encodeFrame([Op.HELLO, 0], [Buffer.from('1')]));
    await new Promise((r) => raw.once('data', r));
    const pending = r0.barrier('step', 60_000);
    raw.destroy();
    await expect(pending).rejects.toThrow(/rank 1 disconnected from the rendezvous store \(its process exited or was killed\)/);
    // (The message differs from the timeout's "did not arrive": this was the immediate path, not the 60 s timeout.)
    expect(server!.deadRanks()).toEqual([1]);
    expect(await r0.deadRanks()).toEqual(['rank 1 disconnected from the rendezvous store (its process exited or was killed)']);
  });

  it('a wrong master address fails fast with the address in the message', async () => {
    await expect(StoreClient.connect('no-such-master.invalid', 29500, { connectTimeoutMs: 60_000 })).rejects.toThrow(
      /cannot reach the rendezvous store \(master\) at no-such-master.invalid:29500: .*Check MASTER_ADDR/,
    );
    // Nothing listening: refused connections are retried (the master may be starting), then reported.
    const s = await StoreServer.listen(0, '127.0.0.1');
    const port = s.port;
    await s.close();
    await expect(StoreClient.connect('127.0.0.1', port, { connectTimeoutMs: 300 })).rejects.toThrow(
      new RegExp(`at 127.0.0.1:${port}: ECONNREFUSED.*kept retrying`),
    );
  });

  it('a second server on a used port explains the clash', async () => {
    await setup(1);
    await expect(StoreServer.listen(server!.port, '127.0.0.1')).rejects.toThrow(/already in use; choose another --master_port/);
  });
});
