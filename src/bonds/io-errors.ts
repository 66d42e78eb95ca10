/** Turns Node file-system errors into {@link BondStoreError}s that say what to do. */
import { BondStoreError } from './errors.js';

/**
 * A BondStoreError for a failed file operation: `permission` for EACCES/EPERM/EROFS (with how to fix
 * it), `io` otherwise. `action` says what was being done ("read", "write", "create the directory ...").
 */
export function ioError(err: unknown, path: string, action: string): BondStoreError {
  if (err instanceof BondStoreError) return err;
  const e = err as NodeJS.ErrnoException;
  const code = typeof e?.code === 'string' ? e.code : undefined;
  const detail = err instanceof Error ? err.message : String(err);
  if (code === 'EACCES' || code === 'EPERM') {
    return new BondStoreError(
      'permission',
      path,
      `cannot ${action} for bond file ${path}: permission denied (${code}). ` +
        `Run wearable-host as the user who owns the file (ls -l '${path}'), or fix its ownership and mode (chmod 600 '${path}'), ` +
        `or use another file with --bonds FILE.`,
      { cause: err },
    );
  }
  if (code === 'EROFS') {
    return new BondStoreError('permission', path, `cannot ${action} for bond file ${path}: the file system is read-only. Use --bonds FILE on a writable disk.`, {
      cause: err,
    });
  }
  if (code === 'ENOSPC') {
    return new BondStoreError('io', path, `cannot ${action} for bond file ${path}: no space left on the device. Free some space; the previous file is intact.`, {
      cause: err,
    });
  }
  if (code === 'ENOTDIR') {
    return new BondStoreError('io', path, `cannot ${action} for bond file ${path}: a part of the path is a file, not a directory (ENOTDIR). Give another path with --bonds FILE.`, {
      cause: err,
    });
  }
  return new BondStoreError('io', path, `cannot ${action} for bond file ${path}: ${detail}`, { cause: err });
}
