export { SftpObserver, type ClientSegment } from './observer.js';
export { renderSftpString } from './text.js';
export { DEFAULT_MAX_PACKET_BYTES } from './constants.js';
export type {
  FileTransferSummary,
  OpenFlags,
  SftpAttributes,
  SftpObserverCallbacks,
  SftpObserverOptions,
  SftpOperation,
  SftpOperationResult,
} from './types.js';
