export {
  ShellCommandExtractor,
  type EchoState,
  type InputDecision,
  type LineLocation,
  type ShellCommandExtractorOptions,
  type SubmittedLine,
} from './shell-command-extractor.js';
