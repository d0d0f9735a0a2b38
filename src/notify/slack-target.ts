import { inspect } from 'node:util';
import { type AlertKind, alertKinds, isAlertKind } from './alert.ts';
import { SlackConfigError } from './errors.ts';

const configPath = 'spec.alerts.slack.secretRef';

/**
 * A validated Slack incoming-webhook target. The URL is a credential: it is held in a private
 * field and only `webhookUrl()` reveals it; `toString`, `toJSON` and `util.inspect` print the
 * origin only, so an accidental log line or error message cannot leak the path.
 */
export class SlackTarget {
  readonly #url: URL;
  /** PEM bundle from the Secret's `ca.crt`, trusted in addition to the system roots. */
  readonly ca: string | undefined;

  constructor(url: URL, ca: string | undefined) {
    this.#url = url;
    this.ca = ca;
  }

  /** The full webhook URL, for the HTTP adapter only. Never log it. */
  webhookUrl(): string {
    return this.#url.href;
  }

  /** `scheme://host[:port]`, safe to log. */
  get origin(): string {
    return this.#url.origin;
  }

  /** The origin followed by a redaction marker, safe to log. */
  get redacted(): string {
    return `${this.#url.origin}/[redacted]`;
  }

  toString(): string {
    return this.redacted;
  }

  toJSON(): { origin: string; customCa: boolean } {
    return { origin: this.origin, customCa: this.ca !== undefined };
  }

  [inspect.custom](): string {
    return `SlackTarget(${this.redacted})`;
  }
}

/** True for `localhost`, 127.0.0.0/8 and ::1 (as `URL.hostname` spells them). */
export function isLoopbackHost(hostname: string): boolean {
  if (hostname === 'localhost' || hostname === '[::1]') return true;
  const octets = /^127\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/.exec(hostname);
  return octets?.slice(1).every((octet) => Number(octet) <= 255) === true;
}

/**
 * Validate the (already base64-decoded) data of the Secret named by `spec.alerts.slack.secretRef`.
 * Key `address`: the incoming-webhook URL, https, or plain http to a loopback host only.
 * Optional key `ca.crt`: PEM certificates for a self-hosted, Slack-compatible receiver.
 * Errors say which key is wrong and never include its value.
 */
export function parseSlackTarget(secretData: Readonly<Record<string, string>>): SlackTarget {
  const address = secretData.address?.trim();
  if (address === undefined || address === '') {
    throw new SlackConfigError('AddressMissing', `${configPath}: key address is missing or empty`);
  }
  let url: URL;
  try {
    url = new URL(address);
  } catch {
    throw new SlackConfigError('AddressInvalid', `${configPath}: key address must be an https URL`);
  }
  if (url.protocol === 'http:') {
    if (!isLoopbackHost(url.hostname)) {
      throw new SlackConfigError(
        'AddressInsecure',
        `${configPath}: key address must be an https URL (plain http is accepted only for loopback hosts)`,
      );
    }
  } else if (url.protocol !== 'https:') {
    throw new SlackConfigError('AddressInvalid', `${configPath}: key address must be an https URL`);
  }
  if (url.username !== '' || url.password !== '') {
    throw new SlackConfigError('AddressInvalid', `${configPath}: key address must not contain user info`);
  }
  const ca = secretData['ca.crt'];
  if (ca !== undefined && !/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/.test(ca)) {
    throw new SlackConfigError(
      'CaInvalid',
      `${configPath}: key ca.crt must hold PEM certificates (-----BEGIN CERTIFICATE-----)`,
    );
  }
  return new SlackTarget(url, ca);
}

/** `spec.alerts.slack.events`, defaulting to every kind; unknown names are an error. */
export function parseAlertEvents(events: readonly string[] | undefined): ReadonlySet<AlertKind> {
  if (events === undefined || events.length === 0) return new Set(alertKinds);
  const unknown = events.filter((event) => !isAlertKind(event));
  if (unknown.length > 0) {
    throw new SlackConfigError(
      'UnknownEvent',
      `spec.alerts.slack.events: unknown event ${unknown.map((e) => JSON.stringify(e)).join(', ')}; expected one of ${alertKinds.join(', ')}`,
    );
  }
  return new Set(events.filter(isAlertKind));
}
