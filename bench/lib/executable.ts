/** Whether a file exists and may be executed (prerequisite checks; free of vitest, so the benchmarks can use it). */
import { accessSync, constants } from 'node:fs';

export function executable(file: string): boolean {
  try {
    accessSync(file, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}
