// Every package's error codes follow the convention in packages/core/README.md: prefixed with
// FLOTILLA_<PACKAGE>_, documented in the package README, and used by one package only.
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { describe, expect, it } from 'vitest';

const packagesDir = join(import.meta.dirname, '..', 'packages');
const packages = readdirSync(packagesDir).filter((name) =>
  existsSync(join(packagesDir, name, 'package.json')),
);

async function codesOf(name: string): Promise<string[]> {
  const entry = join(packagesDir, name, 'dist', 'index.js');
  const mod = (await import(pathToFileURL(entry).href)) as Record<string, unknown>;
  return Object.entries(mod)
    .filter(([exportName]) => exportName.endsWith('ErrorCodes'))
    .flatMap(([, table]) => Object.values(table as Record<string, string>));
}

describe('error codes', () => {
  it.each(packages)('@flotilla/%s: prefixed and documented in its README', async (name) => {
    const readme = readFileSync(join(packagesDir, name, 'README.md'), 'utf8');
    expect(readme).toContain('## Error codes');
    const prefix = `FLOTILLA_${name.toUpperCase().replaceAll('-', '_')}_`;
    for (const code of await codesOf(name)) {
      expect(code).toMatch(/^FLOTILLA_[A-Z0-9]+(?:_[A-Z0-9]+)+$/);
      expect(code.startsWith(prefix), `${code} should start with ${prefix}`).toBe(true);
      expect(readme, `${code} is missing from packages/${name}/README.md`).toContain(`\`${code}\``);
    }
  });

  it('never shares a code between packages', async () => {
    const owner = new Map<string, string>();
    for (const name of packages) {
      for (const code of await codesOf(name)) {
        expect(
          owner.get(code),
          `${code} is used by ${owner.get(code)} and ${name}`,
        ).toBeUndefined();
        owner.set(code, name);
      }
    }
    expect(owner.size).toBeGreaterThan(0);
  });
});
