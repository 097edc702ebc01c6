/**
 * Transpiles TypeScript files (a test child and the src/ files it imports, listed explicitly) into
 * a temporary tree of ES modules that plain `node` runs, for tests that need many real child
 * processes quickly (vite-node takes seconds per process on a shared machine; node ~50 ms).
 */
import { mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import ts from 'typescript';
import { REPO_ROOT } from './repo-root.js';

/** Returns the path of the transpiled `files[0]`; every file keeps its place relative to the repo. */
export function transpileForNode(files: readonly string[]): string {
  const root = mkdtempSync(path.join(os.tmpdir(), 'autogrow-transpiled-'));
  writeFileSync(path.join(root, 'package.json'), '{"type":"module"}\n');
  const outputs: string[] = [];
  for (const file of files) {
    const relative = path.relative(REPO_ROOT, path.resolve(REPO_ROOT, file));
    const output = path.join(root, relative.replace(/\.ts$/, '.js'));
    mkdirSync(path.dirname(output), { recursive: true });
    const { outputText } = ts.transpileModule(readFileSync(path.join(REPO_ROOT, relative), 'utf8'), {
      compilerOptions: { module: ts.ModuleKind.ES2022, target: ts.ScriptTarget.ES2022 },
    });
    writeFileSync(output, outputText);
    outputs.push(output);
  }
  return outputs[0]!;
}
