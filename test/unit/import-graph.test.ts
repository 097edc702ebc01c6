/**
 * The shape of src/, read from the import statements of every src/**\/*.ts (parsed by the
 * TypeScript compiler, so `import type`, `export … from` and `import('…')` type expressions all
 * count): no import cycle between files, no arrow that runs up the layers below, the policy core
 * stays pure, contracts import nothing, and every third-party package has one adapter module.
 *
 * The policy rule repeats eslint.config.js's (no node:*, fs, child_process, execa, dockerode in
 * src/policy) and goes further: policy may call only policy and util code; what it reads from other
 * layers it reads as types.
 */
import { readFileSync, readdirSync } from 'node:fs';
import path from 'node:path';
import ts from 'typescript';
import { describe, expect, it } from 'vitest';
import { REPO_ROOT } from '../support/repo-root.js';

/**
 * Lowest first. A file may import its own layer or any layer below; a top-level directory of src/
 * (or a file directly in src/, named without `.ts`) that is in no layer fails the test, so a new one
 * has to be placed. control sits above agent: it is the owner that wraps a running agent (it starts
 * passes, reads the agent's context and journal), and the CLI talks to it.
 */
export const LAYERS: readonly (readonly string[])[] = [
  ['util', 'contracts'],
  ['exec', 'log', 'schedule'],
  ['config'],
  ['docker', 'storage', 'policy', 'systemd'],
  ['report', 'metrics', 'http', 'doctor', 'reclaim'],
  ['agent'],
  ['control'],
  ['cli'],
  ['main'],
];

/** Packages called from more than one src file on purpose: zod is the schema language of config and web config. */
const SHARED_PACKAGES = new Set(['zod']);

/** Packages whose adapter is a whole area: commander is the CLI's grammar, written by each command. */
const ADAPTER_AREAS = new Map([['commander', 'cli']]);

interface ImportEdge {
  from: string;
  /** A src-relative path for a relative import, the bare specifier otherwise. */
  to: string;
  relative: boolean;
  typeOnly: boolean;
}

const SRC = path.join(REPO_ROOT, 'src');

function sourceFiles(dir: string): string[] {
  const files: string[] = [];
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const full = path.join(dir, entry.name);
    if (entry.isDirectory()) files.push(...sourceFiles(full));
    else if (entry.name.endsWith('.ts') && !entry.name.endsWith('.test.ts') && !entry.name.endsWith('.d.ts'))
      files.push(full);
  }
  return files;
}

/** Every import of one file: static imports, re-exports, `import('…')` calls and type expressions. */
export function importsOf(file: string, text: string): ImportEdge[] {
  const source = ts.createSourceFile(file, text, ts.ScriptTarget.ES2022, true);
  const from = path.relative(SRC, file);
  const edges: ImportEdge[] = [];
  const add = (specifier: string, typeOnly: boolean): void => {
    const relative = specifier.startsWith('.');
    const to = relative
      ? path.relative(SRC, path.resolve(path.dirname(file), specifier.replace(/\.js$/, '.ts')))
      : specifier;
    edges.push({ from, to, relative, typeOnly });
  };
  const visit = (node: ts.Node): void => {
    if (ts.isImportDeclaration(node) && ts.isStringLiteral(node.moduleSpecifier)) {
      const clause = node.importClause;
      const typeOnly =
        clause !== undefined &&
        (clause.isTypeOnly ||
          (clause.name === undefined &&
            clause.namedBindings !== undefined &&
            ts.isNamedImports(clause.namedBindings) &&
            clause.namedBindings.elements.length > 0 &&
            clause.namedBindings.elements.every((element) => element.isTypeOnly)));
      add(node.moduleSpecifier.text, typeOnly);
    } else if (
      ts.isExportDeclaration(node) &&
      node.moduleSpecifier &&
      ts.isStringLiteral(node.moduleSpecifier)
    ) {
      add(node.moduleSpecifier.text, node.isTypeOnly);
    } else if (
      ts.isImportTypeNode(node) &&
      ts.isLiteralTypeNode(node.argument) &&
      ts.isStringLiteral(node.argument.literal)
    ) {
      add(node.argument.literal.text, true);
    } else if (
      ts.isCallExpression(node) &&
      node.expression.kind === ts.SyntaxKind.ImportKeyword &&
      node.arguments[0] !== undefined &&
      ts.isStringLiteral(node.arguments[0])
    ) {
      add(node.arguments[0].text, false);
    }
    ts.forEachChild(node, visit);
  };
  visit(source);
  return edges;
}

/** The top-level directory of src/ a file sits in, or its name without `.ts` for a file in src/. */
function areaOf(srcRelative: string): string {
  const [first, ...rest] = srcRelative.split(path.sep);
  return rest.length === 0 ? (first ?? '').replace(/\.ts$/, '') : (first ?? '');
}

function layerOf(area: string): number {
  return LAYERS.findIndex((layer) => layer.includes(area));
}

/** Cycles as file lists (strongly connected components of more than one file, or a self-import). */
export function cyclesOf(graph: ReadonlyMap<string, readonly string[]>): string[][] {
  let counter = 0;
  const index = new Map<string, number>();
  const low = new Map<string, number>();
  const stack: string[] = [];
  const onStack = new Set<string>();
  const cycles: string[][] = [];
  const connect = (node: string): void => {
    index.set(node, counter);
    low.set(node, counter);
    counter += 1;
    stack.push(node);
    onStack.add(node);
    for (const next of graph.get(node) ?? []) {
      if (!graph.has(next)) continue;
      if (!index.has(next)) {
        connect(next);
        low.set(node, Math.min(low.get(node)!, low.get(next)!));
      } else if (onStack.has(next)) {
        low.set(node, Math.min(low.get(node)!, index.get(next)!));
      }
    }
    if (low.get(node) === index.get(node)) {
      const component: string[] = [];
      let member: string;
      do {
        member = stack.pop()!;
        onStack.delete(member);
        component.push(member);
      } while (member !== node);
      if (component.length > 1 || (graph.get(node) ?? []).includes(node)) cycles.push(component.sort());
    }
  };
  for (const node of [...graph.keys()].sort()) if (!index.has(node)) connect(node);
  return cycles;
}

function upwardImports(edges: readonly ImportEdge[]): string[] {
  const problems: string[] = [];
  for (const edge of edges) {
    if (!edge.relative) continue;
    const fromLayer = layerOf(areaOf(edge.from));
    const toLayer = layerOf(areaOf(edge.to));
    if (toLayer > fromLayer)
      problems.push(`${edge.from} -> ${edge.to} (layer ${fromLayer} imports layer ${toLayer})`);
  }
  return problems;
}

function impurePolicyImports(edges: readonly ImportEdge[]): string[] {
  return edges
    .filter((edge) => areaOf(edge.from) === 'policy')
    .filter((edge) => {
      if (!edge.relative) return true; // no package at all: the core is plain TypeScript
      if (edge.typeOnly) return false;
      return !['policy', 'util'].includes(areaOf(edge.to));
    })
    .map((edge) => `${edge.from} -> ${edge.to}${edge.typeOnly ? ' (type)' : ''}`);
}

const files = sourceFiles(SRC);
const edges = files.flatMap((file) => importsOf(file, readFileSync(file, 'utf8')));

describe('import graph of src/', () => {
  it('reads every source file and finds the imports (the rig bites)', () => {
    expect(files.length).toBeGreaterThan(50);
    expect(edges.filter((edge) => edge.relative).length).toBeGreaterThan(200);
    // A probe with each import form, so a parser that misses one fails here, not silently below.
    const probe = importsOf(
      path.join(SRC, 'policy', 'probe.ts'),
      [
        "import { a } from '../storage/x.js';",
        "import type { B } from '../agent/y.js';",
        "import { type C } from '../cli/z.js';",
        "export { d } from './w.js';",
        "type E = import('../exec/runner.js').CommandRunner;",
        "const f = await import('node:fs');",
      ].join('\n'),
    );
    expect(probe.map((edge) => [edge.to, edge.typeOnly])).toEqual([
      [path.join('storage', 'x.ts'), false],
      [path.join('agent', 'y.ts'), true],
      [path.join('cli', 'z.ts'), true],
      [path.join('policy', 'w.ts'), false],
      [path.join('exec', 'runner.ts'), true],
      ['node:fs', false],
    ]);
    expect(upwardImports(probe)).toEqual([
      'policy/probe.ts -> agent/y.ts (layer 3 imports layer 5)',
      'policy/probe.ts -> cli/z.ts (layer 3 imports layer 7)',
    ]);
    expect(impurePolicyImports(probe)).toEqual([
      'policy/probe.ts -> storage/x.ts',
      'policy/probe.ts -> node:fs',
    ]);
    expect(
      cyclesOf(
        new Map([
          ['a', ['b']],
          ['b', ['c']],
          ['c', ['a']],
          ['d', ['a']],
        ]),
      ),
    ).toEqual([['a', 'b', 'c']]);
  });

  it('places every area of src/ in a layer', () => {
    const areas = [...new Set(files.map((file) => areaOf(path.relative(SRC, file))))].sort();
    expect(areas.filter((area) => layerOf(area) < 0)).toEqual([]);
  });

  it('has no import cycle', () => {
    const graph = new Map<string, string[]>();
    for (const file of files) graph.set(path.relative(SRC, file), []);
    for (const edge of edges) if (edge.relative) graph.get(edge.from)?.push(edge.to);
    expect(cyclesOf(graph)).toEqual([]);
  });

  it('has no upward import', () => {
    expect(upwardImports(edges)).toEqual([]);
  });

  it('keeps the policy core pure: it calls only policy and util code, and reads other layers as types', () => {
    expect(impurePolicyImports(edges)).toEqual([]);
  });

  it('keeps contracts at the bottom: they import nothing', () => {
    expect(
      edges.filter((edge) => areaOf(edge.from) === 'contracts').map((edge) => `${edge.from} -> ${edge.to}`),
    ).toEqual([]);
  });

  it('imports each third-party package from one adapter module (types may be read beside it)', () => {
    const problems: string[] = [];
    const packages = new Map<string, ImportEdge[]>();
    for (const edge of edges) {
      if (edge.relative || edge.to.startsWith('node:')) continue;
      const name = edge.to.startsWith('@')
        ? edge.to.split('/').slice(0, 2).join('/')
        : (edge.to.split('/')[0] ?? '');
      if (!SHARED_PACKAGES.has(name)) packages.set(name, [...(packages.get(name) ?? []), edge]);
    }
    for (const [name, uses] of packages) {
      const area = ADAPTER_AREAS.get(name);
      if (area !== undefined) {
        for (const edge of uses)
          if (areaOf(edge.from) !== area)
            problems.push(`${name}: imported in ${edge.from}, outside ${area}/`);
        continue;
      }
      const adapters = [...new Set(uses.filter((edge) => !edge.typeOnly).map((edge) => edge.from))];
      if (adapters.length > 1) problems.push(`${name}: called from ${adapters.sort().join(', ')}`);
      const adapterAreas = new Set(adapters.map(areaOf));
      for (const edge of uses)
        if (edge.typeOnly && adapters.length > 0 && !adapterAreas.has(areaOf(edge.from)))
          problems.push(`${name}: types read in ${edge.from}, away from its adapter ${adapters.join(', ')}`);
    }
    expect(problems).toEqual([]);
  });
});

describe('import graph of bench/', () => {
  it('never imports test code: the benchmarks have their own support code (bench/lib), which tests share', () => {
    const benchFiles = sourceFiles(path.join(REPO_ROOT, 'bench'));
    expect(benchFiles.length).toBeGreaterThan(5);
    const intoTest = benchFiles.flatMap((file) =>
      ts
        .preProcessFile(readFileSync(file, 'utf8'), true, true)
        .importedFiles.filter(({ fileName }) => fileName.startsWith('.'))
        .map(({ fileName }) => path.relative(REPO_ROOT, path.resolve(path.dirname(file), fileName)))
        .filter((target) => target.split(path.sep)[0] === 'test')
        .map((target) => `${path.relative(REPO_ROOT, file)} -> ${target}`),
    );
    expect(intoTest).toEqual([]);
  });
});

describe('import graph of soak/', () => {
  it('never imports test code: the soak runs on bench/lib, like the benchmarks', () => {
    const soakFiles = sourceFiles(path.join(REPO_ROOT, 'soak'));
    expect(soakFiles.length).toBeGreaterThan(5);
    const intoTest = soakFiles.flatMap((file) =>
      ts
        .preProcessFile(readFileSync(file, 'utf8'), true, true)
        .importedFiles.filter(({ fileName }) => fileName.startsWith('.'))
        .map(({ fileName }) => path.relative(REPO_ROOT, path.resolve(path.dirname(file), fileName)))
        .filter((target) => target.split(path.sep)[0] === 'test')
        .map((target) => `${path.relative(REPO_ROOT, file)} -> ${target}`),
    );
    expect(intoTest).toEqual([]);
  });
});
