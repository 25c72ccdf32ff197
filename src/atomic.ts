// Replacing a file in one step, so a reader or a crash sees the old text or the new, never half.

import fs from 'node:fs';
import path from 'node:path';

/**
 * Writes `content` to a temporary file beside `file`, gives it `mode` (exactly: the umask does
 * not apply), then renames it over `file`. The temporary name starts with a dot because
 * dnsmasq's hostsdir watcher ignores dot files, so it never reads a half-written file.
 */
export function writeAtomic(file: string, content: string, mode = 0o644): void {
  const tmp = path.join(path.dirname(file), `.${path.basename(file)}.${process.pid}.tmp`);
  try {
    fs.writeFileSync(tmp, content, { mode });
    fs.chmodSync(tmp, mode);
    fs.renameSync(tmp, file);
  } catch (e) {
    fs.rmSync(tmp, { force: true });
    throw e;
  }
}
