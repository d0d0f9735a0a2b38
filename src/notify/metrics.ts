import { Counter, Gauge, type Registry } from 'prom-client';
import type { AlertKind } from './alert.ts';

/**
 * Alert counters, by alert kind. Each alert counts once: sent, failed or dropped. `queued` is the
 * number of alerts accepted and not yet counted in one of those (waiting or in flight), summed over
 * the notifiers sharing the registry.
 */
export interface NotifyMetrics {
  readonly sent: Counter<'kind'>;
  readonly failed: Counter<'kind'>;
  readonly dropped: Counter<'kind'>;
  readonly queued: Gauge<'kind'>;
}

function counter(registry: Registry, name: string, help: string): Counter<'kind'> {
  const existing = registry.getSingleMetric(name);
  if (existing instanceof Counter) return existing as Counter<'kind'>;
  return new Counter({ name, help, labelNames: ['kind'], registers: [registry] });
}

function gauge(registry: Registry, name: string, help: string): Gauge<'kind'> {
  const existing = registry.getSingleMetric(name);
  if (existing instanceof Gauge) return existing as Gauge<'kind'>;
  return new Gauge({ name, help, labelNames: ['kind'], registers: [registry] });
}

/** Register (or reuse, so several notifiers can share one registry) the notifier's counters. */
export function notifyMetrics(registry: Registry): NotifyMetrics {
  return {
    sent: counter(
      registry,
      'signet_alerts_sent_total',
      'Alerts delivered to a notification provider, by kind.',
    ),
    failed: counter(
      registry,
      'signet_alerts_failed_total',
      'Alerts the provider refused or that could not be delivered without a configuration change, by kind.',
    ),
    dropped: counter(
      registry,
      'signet_alerts_dropped_total',
      'Alerts dropped because the notifier queue was full or the notifier was closed, by kind.',
    ),
    queued: gauge(
      registry,
      'signet_alerts_queued',
      'Alerts accepted and not yet sent, failed or dropped (waiting or in flight), by kind.',
    ),
  };
}

export function countAlerts(counter: Counter<'kind'>, kinds: readonly AlertKind[]): void {
  for (const kind of kinds) counter.inc({ kind });
}

/** Alerts of `kinds` leave the queue (sent, failed or dropped). */
export function dequeueAlerts(queued: Gauge<'kind'>, kinds: readonly AlertKind[]): void {
  for (const kind of kinds) queued.dec({ kind });
}
