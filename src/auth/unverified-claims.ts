/**
 * Who a refused token claimed to be, for the audit trail only: never trusted, never the token.
 */
export function unverifiedClaims(
  authorization: string | undefined,
): { subject?: string; clientId?: string; tokenId?: string } | undefined {
  const match = /^\s*bearer\s+([\w-]+)\.([\w-]+)\.[\w-]*\s*$/i.exec(authorization ?? '');
  if (!match) return undefined;
  try {
    const claims: unknown = JSON.parse(Buffer.from(match[2], 'base64url').toString('utf8'));
    if (claims === null || typeof claims !== 'object') return undefined;
    const record = claims as Record<string, unknown>;
    const text = (value: unknown) =>
      typeof value === 'string' && value !== '' ? value.slice(0, 255) : undefined;
    return {
      subject: text(record.sub),
      clientId: text(record.azp) ?? text(record.client_id),
      tokenId: text(record.jti),
    };
  } catch {
    return undefined;
  }
}
