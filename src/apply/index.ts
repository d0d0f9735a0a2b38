export * from './apply.ts';
export * from './changeset.ts';
export * from './delete.ts';
export * from './errors.ts';
export * from './manager.ts';
export * from './wait.ts';
