import { createSecureContext, type SecureContext } from 'node:tls';
import type { CallOptions, Store } from '@flotilla/store';
import { RouterError } from './errors.js';
import { isDomainPattern } from './route.js';
import { DEFAULT_ROUTER_PREFIX } from './route-table.js';

/** A certificate for a domain, PEM-encoded. */
export interface Certificate {
  /**
   * The host name it serves (`demo.example.com`), a wildcard (`*.example.com`), or `*` for the
   * default certificate, used when no other matches the client's SNI name.
   */
  readonly domain: string;
  /** The certificate chain, PEM. */
  readonly cert: string;
  /** The private key, PEM (unencrypted). */
  readonly key: string;
}

const MAX_PEM = 64 * 1024;

/** Checks a certificate and builds its TLS context; throws `INVALID_CERTIFICATE` saying why. */
export function loadCertificate(input: unknown): {
  certificate: Certificate;
  context: SecureContext;
} {
  const c = input as Partial<Certificate> | null;
  if (typeof c !== 'object' || c === null) {
    throw new RouterError(
      'FLOTILLA_ROUTER_INVALID_CERTIFICATE',
      'a certificate must be an object { domain, cert, key }',
    );
  }
  const domain = typeof c.domain === 'string' ? c.domain.toLowerCase() : c.domain;
  if (domain !== '*' && !isDomainPattern(domain)) {
    throw new RouterError(
      'FLOTILLA_ROUTER_INVALID_CERTIFICATE',
      `certificate domain ${JSON.stringify(c.domain)} must be a host name, a "*.example.com" wildcard, or "*" for the default`,
    );
  }
  for (const f of ['cert', 'key'] as const) {
    const v = c[f];
    if (typeof v !== 'string' || v.length === 0 || v.length > MAX_PEM || v.includes('\0')) {
      throw new RouterError(
        'FLOTILLA_ROUTER_INVALID_CERTIFICATE',
        `certificate ${f} for ${domain} must be a PEM string of at most ${MAX_PEM} characters`,
      );
    }
  }
  let context: SecureContext;
  try {
    context = createSecureContext({ cert: c.cert, key: c.key });
  } catch (cause) {
    throw new RouterError(
      'FLOTILLA_ROUTER_INVALID_CERTIFICATE',
      `certificate for ${domain} does not load (${(cause as Error).message}): give a PEM chain and its matching unencrypted key`,
      { cause },
    );
  }
  return { certificate: { domain, cert: c.cert as string, key: c.key as string }, context };
}

/**
 * TLS certificates in the store, by domain, without running a router. Every router sharing
 * the store serves them by SNI and picks up changes live.
 */
export class CertificateTable {
  readonly #store: Store;
  readonly #prefix: string;

  /** Makes no store call. `prefix` as for `RouteTable` (default `router/`). */
  constructor(store: Store, options: { readonly prefix?: string } = {}) {
    this.#store = store;
    this.#prefix = options.prefix ?? DEFAULT_ROUTER_PREFIX;
  }

  /** The prefix under which certificates are stored (`<prefix>certs/`). */
  get certsPrefix(): string {
    return `${this.#prefix}certs/`;
  }

  /** Checks that the certificate and key load, then stores them (replacing the domain's). */
  async set(certificate: Certificate, options: CallOptions = {}): Promise<void> {
    const { certificate: c } = loadCertificate(certificate);
    await this.#store.put(this.certsPrefix + c.domain, JSON.stringify(c), options);
  }

  /** Removes a domain's certificate; resolves false when there was none. */
  async remove(domain: string, options: CallOptions = {}): Promise<boolean> {
    if (domain !== '*' && !isDomainPattern(domain)) {
      throw new RouterError(
        'FLOTILLA_ROUTER_INVALID_CERTIFICATE',
        `certificate domain ${JSON.stringify(domain)} is not a host name, wildcard or "*"`,
      );
    }
    return (await this.#store.delete(this.certsPrefix + domain, options)).deleted > 0;
  }

  /** The domains that have a certificate, sorted. */
  async domains(options: CallOptions = {}): Promise<string[]> {
    const res = await this.#store.list(this.certsPrefix, options);
    return res.kvs.map((kv) => kv.key.slice(this.certsPrefix.length));
  }
}

/** Parses a stored certificate entry; throws `INVALID_RECORD` naming the key. */
export function parseCertificateRecord(
  key: string,
  value: string,
): { certificate: Certificate; context: SecureContext } {
  try {
    return loadCertificate(JSON.parse(value));
  } catch (cause) {
    throw new RouterError(
      'FLOTILLA_ROUTER_INVALID_RECORD',
      `certificate entry ${key} cannot be used (${(cause as Error).message}): set the certificate again`,
      { key, cause },
    );
  }
}
