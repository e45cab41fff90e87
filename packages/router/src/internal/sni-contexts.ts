import type { SecureContext } from 'node:tls';

/** TLS contexts by domain, looked up by SNI name: exact, then wildcards, then the default `*`. */
export class SniContexts {
  readonly #byDomain = new Map<string, SecureContext>();

  /** Sets a domain's context. */
  set(domain: string, context: SecureContext): void {
    this.#byDomain.set(domain, context);
  }

  /** Removes a domain's context. */
  delete(domain: string): void {
    this.#byDomain.delete(domain);
  }

  /** Removes every context. */
  clear(): void {
    this.#byDomain.clear();
  }

  /** The domains that have a context. */
  domains(): string[] {
    return [...this.#byDomain.keys()];
  }

  /** The context for an SNI name (any case); `undefined` when none matches and no default. */
  lookup(name: string): SecureContext | undefined {
    const n = name.toLowerCase();
    const exact = this.#byDomain.get(n);
    if (exact !== undefined) return exact;
    let dot = n.indexOf('.');
    while (dot !== -1) {
      const wild = this.#byDomain.get(`*${n.slice(dot)}`);
      if (wild !== undefined) return wild;
      dot = n.indexOf('.', dot + 1);
    }
    return this.#byDomain.get('*');
  }
}
