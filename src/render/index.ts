export * from './errors.ts';
export * from './labels.ts';
export * from './object.ts';
export * from './render.ts';
export * from './scope.ts';
