/** The size of a value as it is sent: its JSON, in UTF-8 bytes. */
export const jsonBytes = (value: unknown): number =>
  Buffer.byteLength(JSON.stringify(value), 'utf8');
