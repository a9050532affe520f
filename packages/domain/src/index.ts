export * from './errors.js';
export * from './ids.js';
export * from './clock.js';
export * from './secret.js';
export * from './model.js';
export * from './policy.js';
