export * from './protocol.js';
export * from './tokens.js';
export * from './transport.js';
export * from './stream.js';
