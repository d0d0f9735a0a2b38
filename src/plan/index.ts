export * from './fieldsv1.ts';
export * from './inventory.ts';
export * from './order.ts';
export * from './plan.ts';
