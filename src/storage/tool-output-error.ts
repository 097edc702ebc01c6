/**
 * Output of a storage tool (dmsetup, btrfs, xfs_quota, xfs_io, lvs/vgs, mountinfo) that does not
 * parse: truncated, garbage, an unexpected column, a number past 2^53, a NUL byte. Every parser
 * under src/storage throws this and only this for bad input, so a caller can tell "the tool said
 * something we cannot read" (skip, report the reason, never act on it) from a bug in the agent.
 */
export class ToolOutputError extends Error {
  override readonly name = 'ToolOutputError';
}

/** A NUL byte never belongs in the text output of these tools: it is refused before parsing. */
export function refuseNul(text: string, tool: string): void {
  const at = text.indexOf('\0');
  if (at >= 0) throw new ToolOutputError(`${tool}: output holds a NUL byte at offset ${at}`);
}
