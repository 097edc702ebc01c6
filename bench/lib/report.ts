/** What each benchmark part returns: tables for stdout and docs/benchmarks.md, notes, key facts. */
export interface Table {
  head: string[];
  rows: string[][];
}

export interface Section {
  id: string;
  title: string;
  /** The command (or configuration) that produced the numbers. */
  how: string[];
  tables: Table[];
  /** What is measured and what is computed, caveats. */
  notes: string[];
}

export interface PartResult {
  section: Section;
  facts: Record<string, number | string | null>;
}

function widths(table: Table): number[] {
  return table.head.map((cell, column) =>
    Math.max(cell.length, ...table.rows.map((row) => (row[column] ?? '').length)),
  );
}

export function textTable(table: Table): string {
  const w = widths(table);
  const line = (cells: string[]) => cells.map((cell, column) => cell.padEnd(w[column] ?? 0)).join('  ');
  return [line(table.head), line(w.map((n) => '-'.repeat(n))), ...table.rows.map(line)].join('\n');
}

export function markdownTable(table: Table): string {
  const esc = (cell: string) => cell.replaceAll('|', '\\|');
  return [
    `| ${table.head.map(esc).join(' | ')} |`,
    `|${table.head.map(() => '---').join('|')}|`,
    ...table.rows.map((row) => `| ${row.map(esc).join(' | ')} |`),
  ].join('\n');
}
