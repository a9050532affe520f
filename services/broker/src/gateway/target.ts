/**
 * What an SSH login name asks for: `alice+plc-hmi-01` is user alice reaching
 * asset plc-hmi-01; plain `alice` asks for the list of her grants. Parsed once
 * into a type so that no later code handles an unparsed name (Warpgate's
 * TargetSelection).
 */
export type TargetSelection =
  | { readonly kind: 'asset'; readonly username: string; readonly assetName: string }
  | { readonly kind: 'menu'; readonly username: string };

const LOGIN = /^([a-z][a-z0-9._-]{0,63})(?:\+([a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?))?$/;

export function parseLoginName(login: string): TargetSelection | null {
  const match = LOGIN.exec(login.toLowerCase());
  if (match === null) return null;
  const username = match[1] ?? '';
  const assetName = match[2];
  return assetName === undefined
    ? { kind: 'menu', username }
    : { kind: 'asset', username, assetName };
}
