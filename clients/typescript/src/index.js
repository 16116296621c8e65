// @keygate/client: a small typed client for the Keygate HTTP API.
//
// The request and answer types come from ./schema.d.ts, generated from the server's
// OpenAPI document; this file is the runtime: openapi-fetch plus a bearer token and the
// problem JSON (RFC 7807) errors every endpoint answers with. Plain ESM, so Node, Deno,
// bundlers and browsers load it as it is.
import createClient from 'openapi-fetch';

/**
 * A client of one Keygate server. `token` is a session token (from `POST /v1/auth/login`)
 * or an API key; it is sent as `Authorization: Bearer <token>`, which needs no cookie and
 * no CSRF header. Without a token only the anonymous endpoints (login, verify, health)
 * answer.
 *
 * @param {{ baseUrl: string, token?: string, fetch?: (input: Request) => Promise<Response> }} options
 */
export function createKeygate(options) {
  const { baseUrl, token, fetch } = options ?? {};
  if (typeof baseUrl !== 'string' || baseUrl === '') {
    throw new TypeError('createKeygate: baseUrl is required, e.g. "https://keygate.example.com"');
  }
  if (token !== undefined && (typeof token !== 'string' || token === '')) {
    throw new TypeError('createKeygate: token, when given, is a non-empty string');
  }
  /** @type {Record<string, string>} */
  const headers = {};
  if (token !== undefined) headers.Authorization = `Bearer ${token}`;
  return createClient({
    baseUrl: baseUrl.replace(/\/+$/, ''),
    headers,
    ...(fetch ? { fetch } : {}),
  });
}

/**
 * A refused request: the server's problem JSON answer (`application/problem+json`). Branch
 * on `code` (stable, snake_case, e.g. `unauthenticated`, `validation_failed`); `detail` is
 * for people.
 */
export class KeygateError extends Error {
  /**
   * @param {number} status
   * @param {{ type?: string, title?: string, status?: number, detail?: string, code?: string } | undefined} problem
   */
  constructor(status, problem) {
    const code = typeof problem?.code === 'string' && problem.code !== '' ? problem.code : `http_${status}`;
    const title = typeof problem?.title === 'string' ? problem.title : '';
    const detail = typeof problem?.detail === 'string' ? problem.detail : '';
    super(`${status} ${code}${detail ? `: ${detail}` : title ? `: ${title}` : ''}`);
    this.name = 'KeygateError';
    /** The HTTP status. */
    this.status = status;
    /** The problem's stable code. */
    this.code = code;
    this.title = title;
    this.detail = detail;
    /** The problem's `type` URI, when the answer had one. */
    this.type = typeof problem?.type === 'string' ? problem.type : undefined;
  }
}

/**
 * Returns an openapi-fetch result's `data`, or throws a KeygateError made from its `error`
 * (the problem JSON) and `response` (its status).
 *
 * @template T
 * @param {{ data?: T, error?: unknown, response: Response }} result
 * @returns {T}
 */
export function unwrap(result) {
  const { data, error, response } = result;
  if (response && response.ok && error === undefined) return /** @type {T} */ (data);
  const status = response ? response.status : 0;
  const problem = error !== null && typeof error === 'object' ? error : { detail: typeof error === 'string' ? error : '' };
  throw new KeygateError(status, /** @type {any} */ (problem));
}
