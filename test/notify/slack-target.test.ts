import { inspect } from 'node:util';
import { describe, expect, it } from 'vitest';
import { alertKinds } from '../../src/notify/alert.ts';
import { SlackConfigError } from '../../src/notify/errors.ts';
import { isLoopbackHost, parseAlertEvents, parseSlackTarget } from '../../src/notify/slack-target.ts';

function configError(run: () => unknown): SlackConfigError {
  try {
    run();
  } catch (error) {
    if (error instanceof SlackConfigError) return error;
    throw error;
  }
  throw new Error('expected a SlackConfigError');
}

describe('parseSlackTarget', () => {
  it('accepts an https address and keeps the URL out of every printable form', () => {
    const target = parseSlackTarget({ address: 'https://hooks.slack.com/services/T000/B000/SECRETTOKEN' });
    expect(target.webhookUrl()).toBe('https://hooks.slack.com/services/T000/B000/SECRETTOKEN');
    expect(target.origin).toBe('https://hooks.slack.com');
    for (const printed of [String(target), JSON.stringify(target), inspect(target), `${target}`]) {
      expect(printed).not.toContain('SECRETTOKEN');
    }
    expect(target.ca).toBeUndefined();
  });

  it.each([
    'http://127.0.0.1:8080/services/T000/B000/SECRETTOKEN',
    'http://127.255.3.4/services/T000/B000/SECRETTOKEN',
    'http://localhost:9000/services/T000/B000/SECRETTOKEN',
    'http://[::1]:9000/services/T000/B000/SECRETTOKEN',
  ])('accepts plain http to loopback %s', (address) => {
    expect(parseSlackTarget({ address }).webhookUrl()).toBe(address);
  });

  it.each([
    ['http://hooks.slack.com/services/T000/B000/SECRETTOKEN', 'AddressInsecure'],
    ['http://10.0.0.1/services/T000/B000/SECRETTOKEN', 'AddressInsecure'],
    ['http://localhost.example.com/services/T000/B000/SECRETTOKEN', 'AddressInsecure'],
    ['http://[::2]/services/T000/B000/SECRETTOKEN', 'AddressInsecure'],
    ['ftp://hooks.slack.com/services/T000/B000/SECRETTOKEN', 'AddressInvalid'],
    ['hooks.slack.com/services/T000/B000/SECRETTOKEN', 'AddressInvalid'],
    ['https://user:SECRETTOKEN@hooks.slack.com/x', 'AddressInvalid'],
    ['', 'AddressMissing'],
  ])('refuses %s with %s and never echoes it', (address, code) => {
    const error = configError(() => parseSlackTarget({ address }));
    expect(error.code).toBe(code);
    expect(error.message).toMatch(/^spec\.alerts\.slack\.secretRef: key address /);
    expect(error.message).not.toContain('SECRETTOKEN');
    expect(error.stack ?? '').not.toContain('SECRETTOKEN');
  });

  it('requires the address key', () => {
    expect(configError(() => parseSlackTarget({})).code).toBe('AddressMissing');
  });

  it('validates ca.crt as PEM', () => {
    const address = 'https://slack.internal/services/T000/B000/SECRETTOKEN';
    expect(configError(() => parseSlackTarget({ address, 'ca.crt': 'not a cert' })).code).toBe('CaInvalid');
    const pem = '-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n';
    expect(parseSlackTarget({ address, 'ca.crt': pem }).ca).toBe(pem);
  });
});

describe('isLoopbackHost', () => {
  it('matches 127.0.0.0/8, ::1 and localhost only', () => {
    expect(['127.0.0.1', '127.1.2.3', 'localhost', '[::1]'].every(isLoopbackHost)).toBe(true);
    expect(['128.0.0.1', '127.0.0.256', '0.0.0.0', 'example.com', '[::]'].some(isLoopbackHost)).toBe(false);
  });
});

describe('parseAlertEvents', () => {
  it('defaults to every kind', () => {
    expect([...parseAlertEvents(undefined)]).toEqual([...alertKinds]);
  });

  it('keeps the listed kinds and refuses unknown ones', () => {
    expect([...parseAlertEvents(['DriftDetected', 'Recovered'])]).toEqual(['DriftDetected', 'Recovered']);
    const error = configError(() => parseAlertEvents(['DriftDetected', 'Drift']));
    expect(error.code).toBe('UnknownEvent');
    expect(error.message).toContain('"Drift"');
  });
});
