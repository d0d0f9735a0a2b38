// Placeholder replaced by the control-plane harness.
export async function setup(): Promise<void> {}
export async function teardown(): Promise<void> {}
