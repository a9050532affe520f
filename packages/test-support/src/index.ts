export * from './paths.js';
export * from './database.js';
export * from './redis.js';
export * from './ssh/index.js';
