export * from './client.ts';
export * from './discovery.ts';
export * from './errors.ts';
export * from './load.ts';
export * from './transport.ts';
export * from './watch.ts';
