/** How many leading bytes are inspected to tell binary from text (as git does). */
export const BINARY_SNIFF_BYTES = 8000;

/**
 * True when `content` looks binary: a NUL byte among its first 8000 bytes.
 * Text encodings used for configuration (UTF-8, Latin-1) never contain NUL;
 * jars, images, worlds and executables almost always do, early.
 */
export function isBinaryContent(content: Uint8Array): boolean {
  const head =
    content.byteLength > BINARY_SNIFF_BYTES ? content.subarray(0, BINARY_SNIFF_BYTES) : content;
  return head.indexOf(0) !== -1;
}
