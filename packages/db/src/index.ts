export * from './pool.js';
export * from './migrate.js';
export * from './embedded.js';
