// The client against a real Keygate server: `KEYGATE_SERVER_BIN=<keygate-server> node --test
// clients/typescript/test/`. The server is started here on a free port with a fresh store and
// the first admin from the environment, and stopped (SIGTERM) at the end.
//
// No key plaintext is ever printed: assertions on it carry their own message, so a failure
// shows that message and not the key.
import { spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';

import { createKeygate, KeygateError, unwrap } from '@keygate/client';

const ADMIN_EMAIL = 'admin@example.com';
const ADMIN_PASSWORD = 'correct-horse-battery';
const LISTENING = 'Keygate: listening on ';

/** Starts the server; resolves with its base URL once it printed the address it bound. */
async function startServer() {
  const bin = process.env.KEYGATE_SERVER_BIN;
  if (!bin) {
    throw new Error(
      'KEYGATE_SERVER_BIN is not set: point it at a built keygate-server, e.g. ' +
        'KEYGATE_SERVER_BIN=target/debug/keygate-server node --test clients/typescript/test/',
    );
  }
  const dir = await mkdtemp(join(tmpdir(), 'keygate-ts-client-'));
  const child = spawn(bin, ['--listen', '127.0.0.1:0', '--data-dir', join(dir, 'store')], {
    env: {
      ...process.env,
      KEYGATE_ADMIN_EMAIL: ADMIN_EMAIL,
      KEYGATE_ADMIN_PASSWORD: ADMIN_PASSWORD,
      KEYGATE_LOG: process.env.KEYGATE_LOG ?? 'warn',
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const output = [];
  child.stderr.setEncoding('utf8');
  child.stderr.on('data', (chunk) => output.push(chunk));
  const exited = new Promise((resolve) => child.once('close', () => resolve()));
  const stop = async () => {
    if (child.pid !== undefined && child.exitCode === null && child.signalCode === null) {
      child.kill('SIGTERM');
      const killer = setTimeout(() => child.kill('SIGKILL'), 10_000);
      await exited;
      clearTimeout(killer);
    }
    await rm(dir, { recursive: true, force: true });
  };
  const listening = new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      reject(new Error(`the server printed no "${LISTENING}" line within 20 s:\n${output.join('')}`));
    }, 20_000);
    // Every stdout line is read (and kept) for as long as the server runs, so it never
    // blocks on a full pipe.
    const lines = createInterface({ input: child.stdout });
    lines.on('line', (line) => {
      output.push(`${line}\n`);
      if (line.startsWith(LISTENING)) {
        clearTimeout(timer);
        resolve(line.slice(LISTENING.length).trim());
      }
    });
    child.on('error', (e) => {
      clearTimeout(timer);
      reject(new Error(`cannot start ${bin}: ${e.message}`));
    });
    child.on('exit', (code, signal) => {
      clearTimeout(timer);
      reject(new Error(`the server exited (${signal ?? code}) before listening:\n${output.join('')}`));
    });
  });
  try {
    return { baseUrl: await listening, stop };
  } catch (e) {
    await stop();
    throw e;
  }
}

/** Runs `promise` and returns the KeygateError it rejects with (fails when it resolves). */
async function refusal(promise) {
  try {
    await promise;
  } catch (e) {
    assert.ok(e instanceof KeygateError, `expected a KeygateError, got ${e}`);
    return e;
  }
  assert.fail('expected the request to be refused');
}

describe('@keygate/client against keygate-server', () => {
  let server;
  /** @type {ReturnType<typeof createKeygate>} */
  let anonymous;
  /** @type {ReturnType<typeof createKeygate>} */
  let admin;
  let namespace;
  let created;

  before(async () => {
    server = await startServer();
    assert.match(server.baseUrl, /^http:\/\/127\.0\.0\.1:\d+$/);
    anonymous = createKeygate({ baseUrl: server.baseUrl });
  });

  after(async () => {
    await server?.stop();
  });

  it('signs in as the first admin and gets a session token', async () => {
    const login = unwrap(
      await anonymous.POST('/v1/auth/login', { body: { email: ADMIN_EMAIL, password: ADMIN_PASSWORD } }),
    );
    assert.equal(typeof login.token, 'string');
    assert.ok(login.token.length > 0, 'the session token is not empty');
    assert.equal(login.user.email, ADMIN_EMAIL);
    assert.ok(login.user.roles.includes('admin'), 'the first user is an admin');
    admin = createKeygate({ baseUrl: server.baseUrl, token: login.token });
  });

  it('reads its organization from GET /v1/me over the bearer token', async () => {
    const me = unwrap(await admin.GET('/v1/me'));
    assert.equal(me.user.email, ADMIN_EMAIL);
    assert.ok(me.organization.id.length > 0, 'the organization has an id');
    const org = me.namespaces.find((ns) => ns.kind === 'organization');
    assert.ok(org, `GET /v1/me lists the organization's namespace: ${JSON.stringify(me.namespaces)}`);
    assert.equal(org.id, me.organization.id, "the organization's namespace id is the organization id");
    assert.ok(org.permissions.length > 0, 'the admin holds permissions in it');
    namespace = org.id;
  });

  it('enables API keys with PATCH /v1/settings', async () => {
    const settings = unwrap(await admin.PATCH('/v1/settings', { body: { api_keys_enabled: true } }));
    assert.equal(settings.api_keys_enabled, true);
    const read = unwrap(await admin.GET('/v1/settings'));
    assert.equal(read.api_keys_enabled, true);
  });

  it('creates a viewer key whose plaintext starts with kg_', async () => {
    const answer = await admin.POST('/v1/keys', {
      body: { name: 'ts-client test', namespace, role: 'viewer' },
    });
    created = unwrap(answer);
    assert.equal(answer.response.status, 201);
    assert.equal(typeof created.key, 'string', 'the answer carries the plaintext');
    assert.ok(created.key.startsWith('kg_'), 'the plaintext starts with kg_');
    assert.equal(created.name, 'ts-client test');
    assert.equal(created.namespace, namespace);
    assert.equal(created.role, 'viewer');
    assert.equal(created.status, 'active');
    assert.ok(created.id.length > 0, 'the key has an id');
  });

  it('verifies the key: valid, VALID', async () => {
    const verified = unwrap(await anonymous.POST('/v1/keys/verify', { body: { key: created.key } }));
    assert.equal(verified.valid, true);
    assert.equal(verified.code, 'VALID');
    assert.equal(verified.key_id, created.id);
    assert.equal(verified.namespace, namespace);
  });

  it('revokes the key, after which it verifies as REVOKED', async () => {
    const revoked = unwrap(
      await admin.POST('/v1/keys/{id}/revoke', { params: { path: { id: created.id } } }),
    );
    assert.equal(revoked.id, created.id);
    assert.equal(revoked.status, 'revoked');
    assert.ok(revoked.revoked_at, 'the key records when it was revoked');
    const verified = unwrap(await anonymous.POST('/v1/keys/verify', { body: { key: created.key } }));
    assert.equal(verified.valid, false);
    assert.equal(verified.code, 'REVOKED');
  });

  it('a wrong password is a KeygateError 401 with a code', async () => {
    const e = await refusal(
      anonymous
        .POST('/v1/auth/login', { body: { email: ADMIN_EMAIL, password: 'not-the-password' } })
        .then(unwrap),
    );
    assert.equal(e.status, 401);
    assert.equal(typeof e.code, 'string');
    assert.ok(e.code.length > 0, 'the problem has a code');
    assert.equal(e.code, 'unauthenticated');
    assert.ok(e.detail.length > 0, 'the problem has a detail');
  });

  it('a key without a name is a KeygateError 422 validation_failed', async () => {
    const e = await refusal(
      admin.POST('/v1/keys', { body: { name: '', namespace, role: 'viewer' } }).then(unwrap),
    );
    assert.equal(e.status, 422);
    assert.equal(e.code, 'validation_failed');
  });

  it('without a token the API refuses with 401 unauthenticated', async () => {
    const e = await refusal(anonymous.GET('/v1/me').then(unwrap));
    assert.equal(e.status, 401);
    assert.equal(e.code, 'unauthenticated');
  });
});

describe('createKeygate and unwrap without a server', () => {
  it('sends the token as a bearer and no cookie', async () => {
    let seen;
    const keygate = createKeygate({
      baseUrl: 'http://keygate.invalid/',
      token: 'session-token',
      fetch: async (request) => {
        seen = request;
        return Response.json({ api_keys_enabled: true, max_active_keys_per_user: 5 });
      },
    });
    const settings = unwrap(await keygate.PATCH('/v1/settings', { body: { api_keys_enabled: true } }));
    assert.equal(settings.max_active_keys_per_user, 5);
    assert.equal(seen.url, 'http://keygate.invalid/v1/settings');
    assert.equal(seen.method, 'PATCH');
    assert.equal(seen.headers.get('authorization'), 'Bearer session-token');
    assert.equal(seen.headers.get('cookie'), null);
    assert.deepEqual(await seen.json(), { api_keys_enabled: true });
  });

  it('sends no Authorization header without a token', async () => {
    let seen;
    const keygate = createKeygate({
      baseUrl: 'http://keygate.invalid',
      fetch: async (request) => {
        seen = request;
        return Response.json({ valid: false, code: 'NOT_FOUND' });
      },
    });
    unwrap(await keygate.POST('/v1/keys/verify', { body: { key: 'kg_x' } }));
    assert.equal(seen.headers.get('authorization'), null);
  });

  it('turns a problem answer into a KeygateError', async () => {
    const keygate = createKeygate({
      baseUrl: 'http://keygate.invalid',
      fetch: async () =>
        new Response(
          JSON.stringify({
            type: 'about:blank',
            title: 'Not allowed',
            status: 403,
            detail: 'API keys are disabled in this organization',
            code: 'api_keys_disabled',
          }),
          { status: 403, headers: { 'content-type': 'application/problem+json' } },
        ),
    });
    const e = await refusal(keygate.GET('/v1/me').then(unwrap));
    assert.equal(e.name, 'KeygateError');
    assert.equal(e.status, 403);
    assert.equal(e.code, 'api_keys_disabled');
    assert.equal(e.title, 'Not allowed');
    assert.equal(e.detail, 'API keys are disabled in this organization');
    assert.ok(e instanceof Error);
  });

  it('gives a non-problem error answer a code from its status', async () => {
    const keygate = createKeygate({
      baseUrl: 'http://keygate.invalid',
      fetch: async () => new Response('bad gateway', { status: 502 }),
    });
    const e = await refusal(keygate.GET('/v1/me').then(unwrap));
    assert.equal(e.status, 502);
    assert.equal(e.code, 'http_502');
    assert.equal(e.detail, 'bad gateway');
  });

  it('refuses a missing baseUrl', () => {
    assert.throws(() => createKeygate({}), TypeError);
  });
});
