/**
 * Transpiles TypeScript files (a test child and the src/ files it imports, found from its imports) into
 * a temporary tree of ES modules that plain `node` runs, for tests that need many real child
 * processes quickly (vite-node takes seconds per process on a shared machine; node ~50 ms).
 */
import { mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import ts from 'typescript';
import { REPO_ROOT } from './repo-root.js';

/**
 * Returns the path of the transpiled `files[0]`; every file keeps its place relative to the repo.
 * The relative imports each transpiled file keeps are followed and transpiled too, so a src/ file that starts
 * importing another one does not break its test children.
 */
export function transpileForNode(files: readonly string[]): string {
  const root = mkdtempSync(path.join(os.tmpdir(), 'autogrow-transpiled-'));
  writeFileSync(path.join(root, 'package.json'), '{"type":"module"}\n');
  const queue = files.map((file) => path.relative(REPO_ROOT, path.resolve(REPO_ROOT, file)));
  const done = new Set<string>();
  for (let relative = queue.shift(); relative !== undefined; relative = queue.shift()) {
    if (done.has(relative)) continue;
    done.add(relative);
    const source = readFileSync(path.join(REPO_ROOT, relative), 'utf8');
    const output = path.join(root, relative.replace(/\.ts$/, '.js'));
    mkdirSync(path.dirname(output), { recursive: true });
    const { outputText } = ts.transpileModule(source, {
      compilerOptions: { module: ts.ModuleKind.ES2022, target: ts.ScriptTarget.ES2022 },
    });
    writeFileSync(output, outputText);
    for (const { fileName } of ts.preProcessFile(outputText, true, true).importedFiles) {
      if (fileName.startsWith('.'))
        queue.push(path.join(path.dirname(relative), fileName.replace(/\.js$/, '.ts')));
    }
  }
  return path.join(root, (files[0] ?? '').replace(/\.ts$/, '.js'));
}
