export {
  AccessTokens,
  type AccessTokenClaims,
  type AccessTokenScope,
  type AccessTokensOptions,
} from './access-tokens.js';
