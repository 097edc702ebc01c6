/**
 * Reading a guest run's verdict: the JUnit XML vitest writes (test/vm/harness: artifacts/junit.xml)
 * and the test titles a guest file declares, so a host test asserts that exactly the declared
 * tests ran and passed (none skipped, none missing) instead of keeping a count by hand.
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import ts from 'typescript';
import { REPO_ROOT } from './repo-root.js';

export type JunitStatus = 'passed' | 'failed' | 'error' | 'skipped';

export interface JunitTestcase {
  /** The test file (vitest writes it as the classname). */
  classname: string;
  /** `describe title > test title` as vitest writes it. */
  name: string;
  status: JunitStatus;
}

function unescapeXml(text: string): string {
  return text.replace(
    /&(quot|apos|lt|gt|amp|#(\d+)|#x([0-9a-fA-F]+));/g,
    (_, entity: string, dec?: string, hex?: string) => {
      if (dec) return String.fromCodePoint(Number(dec));
      if (hex) return String.fromCodePoint(parseInt(hex, 16));
      return { quot: '"', apos: "'", lt: '<', gt: '>', amp: '&' }[entity] ?? '';
    },
  );
}

function attribute(tag: string, name: string): string {
  const match = new RegExp(`\\s${name}="([^"]*)"`).exec(tag);
  if (!match) throw new Error(`junit: <testcase> without ${name}: ${tag}`);
  return unescapeXml(match[1] ?? '');
}

export function parseJunit(xml: string): JunitTestcase[] {
  if (!/<testsuites[\s>]/.test(xml)) throw new Error('junit: no <testsuites> element');
  const testcases: JunitTestcase[] = [];
  for (const match of xml.matchAll(/<testcase\b([^>]*?)(\/>|>([\s\S]*?)<\/testcase>)/g)) {
    const tag = match[1] ?? '';
    const body = match[3] ?? '';
    const status: JunitStatus = /<failure\b/.test(body)
      ? 'failed'
      : /<error\b/.test(body)
        ? 'error'
        : /<skipped\b/.test(body)
          ? 'skipped'
          : 'passed';
    testcases.push({ classname: attribute(tag, 'classname'), name: attribute(tag, 'name'), status });
  }
  return testcases;
}

export function readJunit(file: string): JunitTestcase[] {
  return parseJunit(readFileSync(file, 'utf8'));
}

/**
 * The titles of the `it(...)`/`test(...)` calls in a test file (relative to the repository), read
 * with the TypeScript parser. A title that is not a plain string is refused: it could not be
 * matched against the run.
 */
export function declaredTestTitles(file: string): string[] {
  const text = readFileSync(path.join(REPO_ROOT, file), 'utf8');
  const source = ts.createSourceFile(file, text, ts.ScriptTarget.ES2022, true);
  const titles: string[] = [];
  const visit = (node: ts.Node): void => {
    if (
      ts.isCallExpression(node) &&
      ts.isIdentifier(node.expression) &&
      ['it', 'test'].includes(node.expression.text)
    ) {
      const title = node.arguments[0];
      if (!title || !(ts.isStringLiteral(title) || ts.isNoSubstitutionTemplateLiteral(title))) {
        const { line } = source.getLineAndCharacterOfPosition(node.getStart());
        throw new Error(`${file}:${line + 1}: a test title that is not a plain string`);
      }
      titles.push(title.text);
    }
    ts.forEachChild(node, visit);
  };
  visit(source);
  return titles;
}

/**
 * Problems with a guest run of `file`: a declared test with no passed testcase (missing, skipped,
 * failed), or a testcase of that file that did not pass. Empty when every declared test passed.
 */
export function guestRunProblems(testcases: readonly JunitTestcase[], file: string): string[] {
  const ofFile = testcases.filter((testcase) => testcase.classname === file);
  const problems = ofFile
    .filter((testcase) => testcase.status !== 'passed')
    .map((testcase) => `${testcase.status}: ${testcase.name}`);
  for (const title of declaredTestTitles(file)) {
    const ran = ofFile.some(
      (testcase) =>
        testcase.status === 'passed' && (testcase.name === title || testcase.name.endsWith(` > ${title}`)),
    );
    if (!ran && !problems.some((problem) => problem.endsWith(title))) problems.push(`did not run: ${title}`);
  }
  return problems;
}
