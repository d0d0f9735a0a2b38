/**
 * The drift baseline of a desired object, pure: the fields the desired object sets, with the
 * values the API server stored for them (its answer to Signet's server-side apply, or a live
 * object known to hold what Signet applied). The server normalises some values on write, e.g.
 * quantities (`cpu: 1000m` is stored as `1`, `memory: 1024Mi` as `1Gi`, `0.5` as `500m`), so
 * the Git text is not what the live object can be compared with; this is.
 *
 * The walk is detectDrift's: the same fields (labels and annotations of metadata, every other
 * top-level field but status), the same associative-list matching, the same item-by-item lists.
 * A desired field the server did not store at all (a Secret's write-only `stringData`) is left
 * out. Unchanged parts are the desired object's own values (shared, not copied), and when
 * nothing differs the desired object itself is returned, so callers can keep one reference.
 */
import { type JsonValue, jsonEqual } from '../render/object.ts';
import {
  comparedMetadata,
  type DesiredObject,
  ignoredTopLevel,
  isEmptyContainer,
  isObjectList,
  isRecord,
  matchingItem,
  mergeKeyOf,
} from './drift.ts';

/** Marks a desired field the server's object does not hold. */
const absent: unique symbol = Symbol('absent');

function project(desired: unknown, server: unknown): unknown {
  if (server === undefined) {
    // Nothing stored: an empty container or an explicit null means just that; a value was dropped.
    return desired === null || isEmptyContainer(desired) ? desired : absent;
  }
  if (isRecord(desired)) {
    if (!isRecord(server)) return desired;
    return projectFields(desired, server) ?? desired;
  }
  if (Array.isArray(desired)) {
    if (!Array.isArray(server)) return desired;
    const mergeKey = mergeKeyOf(desired);
    let items: unknown[];
    if (mergeKey !== undefined) {
      items = desired.map((item) => {
        const match = matchingItem(item, server, mergeKey);
        const projected = match === undefined ? item : project(item, match);
        return projected === absent ? item : projected;
      });
    } else if (isObjectList(desired) && server.length === desired.length) {
      items = desired.map((item, index) => {
        const projected = project(item, server[index]);
        return projected === absent ? item : projected;
      });
    } else {
      // Compared whole (a list of scalars): the server's list, unless it is the desired one.
      return jsonEqual(desired as JsonValue, server as JsonValue) ? desired : server;
    }
    return items.every((item, index) => item === desired[index]) ? desired : items;
  }
  // A scalar: the server's own spelling (`"10"` for `10`, `"1"` for `1000m`), so that a plan can
  // compare it with managed fields exactly.
  return desired === server ? desired : server;
}

/** The projected fields of `desired`, or undefined when every one is the desired value itself. */
function projectFields(
  desired: Readonly<Record<string, unknown>>,
  server: Readonly<Record<string, unknown>>,
  keep: (field: string) => boolean = () => false,
): Record<string, unknown> | undefined {
  let changed = false;
  const result: Record<string, unknown> = {};
  for (const [field, value] of Object.entries(desired)) {
    if (keep(field)) {
      result[field] = value;
      continue;
    }
    const projected = project(value, server[field]);
    if (projected === absent) {
      changed = true;
      continue;
    }
    if (projected !== value) changed = true;
    result[field] = projected;
  }
  return changed ? result : undefined;
}

/**
 * The desired object's field set with the values `server` holds at the same paths; `desired`
 * itself when they are all equal. Identity, status and the metadata drift does not compare are
 * kept as desired.
 */
export function driftBaseline(
  desired: DesiredObject,
  server: Readonly<Record<string, unknown>>,
): DesiredObject {
  const serverMetadata = isRecord(server.metadata) ? server.metadata : {};
  const metadata =
    projectFields(desired.metadata, serverMetadata, (field) => !comparedMetadata.has(field)) ??
    desired.metadata;
  const rest = projectFields(desired, server, (field) => ignoredTopLevel.has(field) || field === 'metadata');
  if (rest === undefined && metadata === desired.metadata) return desired;
  return { ...(rest ?? desired), metadata } as DesiredObject;
}
