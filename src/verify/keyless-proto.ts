// A minimal protobuf (proto3 binary wire format) codec for dev.sigstore.rekor.v1.TransparencyLogEntry,
// the message gitsign embeds as the CMS unsigned attribute 1.3.6.1.4.1.57264.3.1.
// @sigstore/protobuf-specs only ships JSON codecs, so the few fields needed are handled here.
//
// TransparencyLogEntry { int64 log_index = 1; LogId log_id = 2 { bytes key_id = 1 };
//   KindVersion kind_version = 3 { string kind = 1; string version = 2 }; int64 integrated_time = 4;
//   InclusionPromise inclusion_promise = 5 { bytes signed_entry_timestamp = 1 };
//   InclusionProof inclusion_proof = 6 { int64 log_index = 1; bytes root_hash = 2; int64 tree_size = 3;
//     repeated bytes hashes = 4; Checkpoint checkpoint = 5 { string envelope = 1 } };
//   bytes canonicalized_body = 7 }

/** Decoded TransparencyLogEntry, in the protobuf-specs JSON shape (int64 as decimal strings, bytes as Buffers). */
export interface DecodedTransparencyLogEntry {
  logIndex: string;
  logId?: { keyId: Buffer };
  kindVersion?: { kind: string; version: string };
  integratedTime: string;
  inclusionPromise?: { signedEntryTimestamp: Buffer };
  inclusionProof?: {
    logIndex: string;
    rootHash: Buffer;
    treeSize: string;
    hashes: Buffer[];
    checkpoint?: { envelope: string };
  };
  canonicalizedBody: Buffer;
}

export class ProtobufDecodeError extends Error {
  readonly code = 'MalformedProtobuf' as const;
  constructor(message: string) {
    super(message);
    this.name = 'ProtobufDecodeError';
  }
}

const WIRE_VARINT = 0;
const WIRE_I64 = 1;
const WIRE_LEN = 2;
const WIRE_I32 = 5;

interface Field {
  number: number;
  varint?: bigint;
  bytes?: Buffer;
}

function readVarint(buf: Buffer, start: number): [bigint, number] {
  let result = 0n;
  let shift = 0n;
  let pos = start;
  for (;;) {
    if (pos >= buf.length) throw new ProtobufDecodeError('truncated varint');
    if (shift > 63n) throw new ProtobufDecodeError('varint longer than 10 bytes');
    const byte = buf[pos] as number;
    pos += 1;
    result |= BigInt(byte & 0x7f) << shift;
    if ((byte & 0x80) === 0) return [result, pos];
    shift += 7n;
  }
}

function readFields(buf: Buffer): Field[] {
  const fields: Field[] = [];
  let pos = 0;
  while (pos < buf.length) {
    const [key, afterKey] = readVarint(buf, pos);
    pos = afterKey;
    const number = Number(key >> 3n);
    const wireType = Number(key & 7n);
    if (number === 0) throw new ProtobufDecodeError('field number 0');
    switch (wireType) {
      case WIRE_VARINT: {
        const [value, next] = readVarint(buf, pos);
        fields.push({ number, varint: value });
        pos = next;
        break;
      }
      case WIRE_LEN: {
        const [length, next] = readVarint(buf, pos);
        const end = next + Number(length);
        if (length > BigInt(buf.length) || end > buf.length) {
          throw new ProtobufDecodeError(`field ${number} overruns the message`);
        }
        fields.push({ number, bytes: buf.subarray(next, end) });
        pos = end;
        break;
      }
      case WIRE_I64:
        pos += 8;
        break;
      case WIRE_I32:
        pos += 4;
        break;
      default:
        throw new ProtobufDecodeError(`unsupported wire type ${wireType} for field ${number}`);
    }
    if (pos > buf.length) throw new ProtobufDecodeError('truncated fixed-width field');
  }
  return fields;
}

/** int64 varints are two's complement on the wire; negative values are 10-byte varints. */
function int64(value: bigint | undefined): string {
  if (value === undefined) return '0';
  return BigInt.asIntN(64, value).toString();
}

function last(fields: Field[], number: number): Field | undefined {
  let found: Field | undefined;
  for (const field of fields) if (field.number === number) found = field;
  return found;
}

function bytesOf(fields: Field[], number: number): Buffer | undefined {
  const field = last(fields, number);
  if (field && field.bytes === undefined)
    throw new ProtobufDecodeError(`field ${number} is not length-delimited`);
  return field?.bytes;
}

function varintOf(fields: Field[], number: number): bigint | undefined {
  const field = last(fields, number);
  if (field && field.varint === undefined) throw new ProtobufDecodeError(`field ${number} is not a varint`);
  return field?.varint;
}

function stringOf(fields: Field[], number: number): string {
  return (bytesOf(fields, number) ?? Buffer.alloc(0)).toString('utf8');
}

/** Decodes a binary TransparencyLogEntry. Throws ProtobufDecodeError on malformed input. */
export function decodeTransparencyLogEntry(bytes: Uint8Array): DecodedTransparencyLogEntry {
  const buf = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const top = readFields(buf);
  const entry: DecodedTransparencyLogEntry = {
    logIndex: int64(varintOf(top, 1)),
    integratedTime: int64(varintOf(top, 4)),
    canonicalizedBody: Buffer.from(bytesOf(top, 7) ?? Buffer.alloc(0)),
  };
  const logId = bytesOf(top, 2);
  if (logId) entry.logId = { keyId: Buffer.from(bytesOf(readFields(logId), 1) ?? Buffer.alloc(0)) };
  const kindVersion = bytesOf(top, 3);
  if (kindVersion) {
    const kv = readFields(kindVersion);
    entry.kindVersion = { kind: stringOf(kv, 1), version: stringOf(kv, 2) };
  }
  const promise = bytesOf(top, 5);
  if (promise) {
    entry.inclusionPromise = {
      signedEntryTimestamp: Buffer.from(bytesOf(readFields(promise), 1) ?? Buffer.alloc(0)),
    };
  }
  const proof = bytesOf(top, 6);
  if (proof) {
    const p = readFields(proof);
    const checkpoint = bytesOf(p, 5);
    entry.inclusionProof = {
      logIndex: int64(varintOf(p, 1)),
      rootHash: Buffer.from(bytesOf(p, 2) ?? Buffer.alloc(0)),
      treeSize: int64(varintOf(p, 3)),
      hashes: p.filter((f) => f.number === 4).map((f) => Buffer.from(f.bytes ?? Buffer.alloc(0))),
    };
    if (checkpoint) entry.inclusionProof.checkpoint = { envelope: stringOf(readFields(checkpoint), 1) };
  }
  return entry;
}

function varint(value: bigint): Buffer {
  let v = BigInt.asUintN(64, value);
  const out: number[] = [];
  do {
    let byte = Number(v & 0x7fn);
    v >>= 7n;
    if (v !== 0n) byte |= 0x80;
    out.push(byte);
  } while (v !== 0n);
  return Buffer.from(out);
}

function tag(number: number, wireType: number): Buffer {
  return varint(BigInt((number << 3) | wireType));
}

function lenField(number: number, payload: Uint8Array): Buffer {
  return Buffer.concat([tag(number, WIRE_LEN), varint(BigInt(payload.length)), payload]);
}

function intField(number: number, decimal: string): Buffer {
  const value = BigInt(decimal);
  return value === 0n ? Buffer.alloc(0) : Buffer.concat([tag(number, WIRE_VARINT), varint(value)]);
}

function bytesField(number: number, payload: Uint8Array | undefined): Buffer {
  return payload && payload.length > 0 ? lenField(number, payload) : Buffer.alloc(0);
}

/** Encodes a TransparencyLogEntry (proto3: default-valued scalars omitted), the inverse of the decoder. */
export function encodeTransparencyLogEntry(entry: DecodedTransparencyLogEntry): Buffer {
  const parts: Buffer[] = [intField(1, entry.logIndex)];
  if (entry.logId) parts.push(lenField(2, bytesField(1, entry.logId.keyId)));
  if (entry.kindVersion) {
    parts.push(
      lenField(
        3,
        Buffer.concat([
          bytesField(1, Buffer.from(entry.kindVersion.kind)),
          bytesField(2, Buffer.from(entry.kindVersion.version)),
        ]),
      ),
    );
  }
  parts.push(intField(4, entry.integratedTime));
  if (entry.inclusionPromise) {
    parts.push(lenField(5, bytesField(1, entry.inclusionPromise.signedEntryTimestamp)));
  }
  if (entry.inclusionProof) {
    const proof = entry.inclusionProof;
    const proofParts = [
      intField(1, proof.logIndex),
      bytesField(2, proof.rootHash),
      intField(3, proof.treeSize),
      ...proof.hashes.map((hash) => lenField(4, hash)),
    ];
    if (proof.checkpoint) proofParts.push(lenField(5, bytesField(1, Buffer.from(proof.checkpoint.envelope))));
    parts.push(lenField(6, Buffer.concat(proofParts)));
  }
  parts.push(bytesField(7, entry.canonicalizedBody));
  return Buffer.concat(parts);
}
