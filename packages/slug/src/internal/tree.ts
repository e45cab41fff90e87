/**
 * The rule for links, shared by packing and extracting: a model of a tree of entries, and the
 * resolution of a symlink's target through it, exactly as the kernel would walk it.
 */

/** What an entry of the tree is. */
export type Node =
  | { readonly kind: 'directory' }
  | { readonly kind: 'file' }
  | { readonly kind: 'symlink'; readonly target: string };

/** Where a symlink leads: inside the tree, outside it, or round in a loop. */
export type Resolution = 'inside' | 'escape' | 'loop';

/** The kernel's limit on symlinks followed in one lookup (Linux `MAXSYMLINKS`). */
const MAX_HOPS = 40;

/**
 * Entries keyed by their path relative to the root (`bin/web`, no leading `./`, no trailing
 * `/`). The root itself is not in the map.
 */
export type Tree = ReadonlyMap<string, Node>;

/**
 * Resolves `target`, a symlink's target as written in the link at `linkPath`, through `tree`.
 *
 * The walk keeps the physical path as a stack of components: a component that is a symlink in
 * the tree is replaced by its target, and `..` pops the physical parent. So `a -> .` followed
 * by `b -> a/a/..` is seen to escape, where a lexical check (`a/a/..` is `a`) would let it
 * through. Components that do not exist are taken as directories: the kernel would fail the
 * lookup there, which cannot escape.
 */
export function resolveLink(tree: Tree, linkPath: string, target: string): Resolution {
  if (target.startsWith('/')) return 'escape';
  const stack = linkPath.split('/').slice(0, -1);
  const pending = target.split('/');
  let hops = 0;
  for (let c = pending.shift(); c !== undefined; c = pending.shift()) {
    if (c === '' || c === '.') continue;
    if (c === '..') {
      if (stack.length === 0) return 'escape';
      stack.pop();
      continue;
    }
    stack.push(c);
    const node = tree.get(stack.join('/'));
    if (node?.kind !== 'symlink') continue;
    if (++hops > MAX_HOPS) return 'loop';
    stack.pop();
    if (node.target.startsWith('/')) return 'escape';
    pending.unshift(...node.target.split('/'));
  }
  return 'inside';
}

/**
 * Splits an entry name into its path components, or says why it cannot be one: `'absolute'`
 * for a leading `/`, `'dot-dot'` for a `..` component, `'nul'` for a NUL byte. `./` prefixes,
 * `.` components, repeated and trailing slashes are dropped; the root is `[]`.
 */
export function splitName(name: string): string[] | 'absolute' | 'dot-dot' | 'nul' {
  if (name.includes('\0')) return 'nul';
  if (name.startsWith('/')) return 'absolute';
  const parts = name.split('/').filter((p) => p !== '' && p !== '.');
  if (parts.includes('..')) return 'dot-dot';
  return parts;
}
