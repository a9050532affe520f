export {
  CHUNK_KINDS,
  decodeFrames,
  encodeFrames,
  FRAME_HEADER_BYTES,
  isChunkKind,
  MalformedRecordingError,
  type ChunkKind,
  type RecordedFrame,
} from './frames.js';
export { chunkHash, RECORDING_GENESIS_HASH, type ChunkContent, type StoredChunk } from './chain.js';
export {
  DEFAULT_CHUNK_BATCH_SIZE,
  extentToSeal,
  pgChunkSink,
  streamSessionChunks,
  type ChunkSink,
  type RecordingExtent,
} from './repository.js';
export {
  DEFAULT_FLUSH_INTERVAL_MS,
  DEFAULT_HIGH_WATER_MARK,
  DEFAULT_MAX_CHUNK_BYTES,
  MAX_CHUNK_SLACK_BYTES,
  RecordingFailedError,
  SessionRecorder,
  type SessionRecorderOptions,
} from './recorder.js';
export {
  verifySessionRecording,
  type RecordingVerifyFailure,
  type RecordingVerifyFailureReason,
  type RecordingVerifyResult,
} from './verify.js';
export {
  asciicastHeader,
  asciicastLines,
  type AsciicastHeaderInfo,
  type AsciicastOptions,
} from './asciicast.js';
export { outputText } from './text.js';
export { collectFrames } from './frames-of.js';
export {
  RecordingWriteError,
  ThreadedChunkSink,
  type ThreadedChunkSinkOptions,
} from './threaded-sink.js';
