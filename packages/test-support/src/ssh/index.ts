export * from './sshd.js';
export * from './client.js';
export * from './interactive.js';
export {
  ASSET_USER_NAME,
  ASSET_USER_PASSWORD,
  ensureAssetUser,
  type AssetUser,
} from './asset-user.js';
export { runProgram, waitForPort, type RunOptions, type RunResult } from './process.js';
