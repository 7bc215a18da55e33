/** Options of `FolderTemplateStorage`. */
export interface FolderTemplateStorageConfig {
  /** The folder holding `layers/` and `templates/` (created on `init` when writable). */
  root: string;
  /** Refuse every write (`capabilities.writable` is false). Default false. */
  readOnly?: boolean;
  /**
   * Flush each written file to disk before it becomes visible (default true).
   * Turn off only for throw-away storages (tests) where speed beats durability.
   */
  fsync?: boolean;
  /** Temp files older than this are removed on `init` (left by a crashed writer). Default 1 hour. */
  staleTempFileMs?: number;
}
