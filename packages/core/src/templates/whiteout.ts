/**
 * Whiteouts, as in OCI image layers: an empty file `.wh.<name>` in a layer
 * deletes `<name>` (a file or a whole directory) coming from lower layers; the
 * file `.wh..wh..opq` in a directory hides everything lower layers put in that
 * directory. Markers are never copied into the instance.
 */

export const WHITEOUT_PREFIX = ".wh.";
export const OPAQUE_WHITEOUT = ".wh..wh..opq";

/** The name a whiteout marker deletes, `opaque` for the opaque marker, or undefined for a normal name. */
export function whiteoutTarget(name: string): string | { opaque: true } | undefined {
  if (name === OPAQUE_WHITEOUT) return { opaque: true };
  if (!name.startsWith(WHITEOUT_PREFIX)) return undefined;
  return name.slice(WHITEOUT_PREFIX.length);
}
