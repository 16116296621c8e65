// Type-level test, never run: `npx tsc -p clients/typescript --noEmit` must accept it, and
// each `@ts-expect-error` must find an error there, or the check fails (proving the
// generated types bite).
import { createKeygate, KeygateError, unwrap } from '@keygate/client';
import type { components, KeygateClient, Problem } from '@keygate/client';

type VerifyCode = components['schemas']['VerifyCode'];

export async function typed(baseUrl: string, email: string, password: string): Promise<VerifyCode> {
  const anonymous: KeygateClient = createKeygate({ baseUrl });
  const login = unwrap(await anonymous.POST('/v1/auth/login', { body: { email, password } }));
  const token: string = login.token;

  const keygate = createKeygate({ baseUrl, token, fetch: (request) => fetch(request) });
  const me = unwrap(await keygate.GET('/v1/me'));
  const organization: string = me.organization.id;
  unwrap(await keygate.PATCH('/v1/settings', { body: { api_keys_enabled: true } }));

  const created = unwrap(
    await keygate.POST('/v1/keys', { body: { name: 'ci', namespace: organization, role: 'viewer' } }),
  );
  const plaintext: string = created.key;
  const id: string = created.id;

  const verified = unwrap(await anonymous.POST('/v1/keys/verify', { body: { key: plaintext } }));
  const valid: boolean = verified.valid;
  void valid;
  unwrap(await keygate.POST('/v1/keys/{id}/revoke', { params: { path: { id } } }));

  // A body without its required field. (openapi-fetch infers the options' type from the
  // argument, so TypeScript's excess-property check does not flag an unknown extra field.)
  // @ts-expect-error VerifyRequest requires `key`
  await anonymous.POST('/v1/keys/verify', { body: { namespace: organization } });
  // A body field of the wrong type.
  // @ts-expect-error api_keys_enabled is a boolean
  await keygate.PATCH('/v1/settings', { body: { api_keys_enabled: 'yes' } });
  // A path the API does not have.
  // @ts-expect-error there is no /v1/keys/{id}/disable
  await keygate.POST('/v1/keys/{id}/disable', { params: { path: { id } } });
  // A role outside the KeyRole enum.
  // @ts-expect-error `owner` is not a KeyRole
  await keygate.POST('/v1/keys', { body: { name: 'x', namespace: organization, role: 'owner' } });
  // A verification code outside the VerifyCode enum.
  // @ts-expect-error KEY_REVOKED is not a VerifyCode (it is REVOKED)
  const wrong: VerifyCode = 'KEY_REVOKED';
  void wrong;

  // The error side: a problem, whose code a caller branches on.
  const failed = await anonymous.POST('/v1/auth/login', { body: { email, password: '' } });
  if (failed.error) {
    const problem: Problem = failed.error;
    const code: string = problem.code;
    void code;
  }
  try {
    unwrap(failed);
  } catch (e) {
    if (e instanceof KeygateError) {
      const status: number = e.status;
      const code: string = e.code;
      void status;
      void code;
    }
  }
  return verified.code;
}
