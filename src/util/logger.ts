import { type Logger, pino } from 'pino';

/**
 * Structured JSON logs. Secrets never reach a log line: the paths below are censored
 * wherever they appear, and callers log object keys and reasons, never Secret data or URLs.
 * A whole `credentials` object (a Secret's fetch credentials: password, token, SSH `identity`
 * key, known_hosts) is censored, and so is any `privateKey` or `passphrase` field. A bare
 * `identity` is not a secret: it is the operator's leader-election identity, which logs name.
 */
export const redactedLogPaths = [
  'password',
  'token',
  'bearerToken',
  'credentials',
  'privateKey',
  'passphrase',
  'address',
  'webhookUrl',
  'authorization',
  '*.password',
  '*.token',
  '*.bearerToken',
  '*.credentials',
  '*.privateKey',
  '*.passphrase',
  '*.address',
  '*.webhookUrl',
  '*.authorization',
  'headers.authorization',
  'secret.data',
];

export interface LoggerOptions {
  readonly level?: string;
  readonly destination?: NodeJS.WritableStream;
}

export function createLogger(options: LoggerOptions = {}): Logger {
  const settings = {
    level: options.level ?? process.env.SIGNET_LOG_LEVEL ?? 'info',
    base: { component: 'signet' },
    redact: { paths: redactedLogPaths, censor: '[redacted]' },
    timestamp: pino.stdTimeFunctions.isoTime,
  };
  return options.destination === undefined ? pino(settings) : pino(settings, options.destination);
}

export type { Logger };
