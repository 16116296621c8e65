import type { Client } from 'openapi-fetch';
import type { components, operations, paths } from './schema.js';

export type { components, operations, paths };

/** The problem JSON (RFC 7807) every refused request answers with. */
export type Problem = components['schemas']['Problem'];

/** The client `createKeygate` returns: openapi-fetch, typed with the API's paths. */
export type KeygateClient = Client<paths, `${string}/${string}`>;

export interface KeygateOptions {
  /** The server's origin, e.g. `https://keygate.example.com` (a trailing slash is dropped). */
  baseUrl: string;
  /**
   * A session token (from `POST /v1/auth/login`) or an API key, sent as
   * `Authorization: Bearer <token>`: no cookie, so no CSRF header is needed.
   */
  token?: string;
  /** A fetch to use instead of `globalThis.fetch`. */
  fetch?: (input: Request) => Promise<Response>;
}

export declare function createKeygate(options: KeygateOptions): KeygateClient;

/** A refused request, from the server's problem JSON answer. */
export declare class KeygateError extends Error {
  constructor(status: number, problem?: Partial<Problem>);
  readonly name: 'KeygateError';
  /** The HTTP status (0 when no answer came). */
  readonly status: number;
  /** The problem's stable snake_case code, e.g. `unauthenticated`, `validation_failed`. */
  readonly code: string;
  readonly title: string;
  readonly detail: string;
  readonly type: string | undefined;
}

/** The `data` of an openapi-fetch result's success branch. */
export type DataOf<R> = R extends { data: infer D; error?: never } ? D : never;

/** Returns a result's `data`, or throws a KeygateError from its `error` and `response`. */
export declare function unwrap<R extends { data?: unknown; error?: unknown; response: Response }>(
  result: R,
): DataOf<R>;
