export type RenderErrorCode =
  | 'InvalidPath'
  | 'FileTooLarge'
  | 'TotalSizeExceeded'
  | 'InvalidEncoding'
  | 'ParseError'
  | 'TooManyAliases'
  | 'TooDeep'
  | 'NotAnObject'
  | 'InvalidObject'
  | 'TooManyObjects'
  | 'DuplicateObject'
  | 'SymlinkEscape'
  | 'KustomizeNotSupported'
  | 'KustomizeRemote'
  | 'KustomizeHelm'
  | 'KustomizePlugin'
  | 'KustomizePathEscape'
  | 'KustomizeInvalid'
  | 'KustomizeBuildFailed'
  | 'KustomizeTimeout'
  | 'KustomizeOutputTooLarge'
  | 'KustomizeEngineUnavailable'
  | 'HelmChartInvalid'
  | 'HelmDependencyNotVendored'
  | 'HelmFilesEscape'
  | 'HelmBuildFailed'
  | 'HelmTimeout'
  | 'HelmOutputTooLarge'
  | 'HelmEngineUnavailable'
  | 'UnknownScope';

export interface RenderErrorContext {
  /** Path of the file relative to the rendered tree (posix). */
  readonly file?: string;
  /** Zero-based index of the YAML document within the file. */
  readonly documentIndex?: number;
  /** Zero-based index within a `List` document's items. */
  readonly itemIndex?: number;
  /** For DuplicateObject: the other file. */
  readonly otherFile?: string;
  /** For InvalidObject: every bad field path. */
  readonly fields?: readonly string[];
}

export class RenderError extends Error {
  override readonly name = 'RenderError';
  readonly code: RenderErrorCode;
  readonly file: string | undefined;
  readonly documentIndex: number | undefined;
  readonly itemIndex: number | undefined;
  readonly otherFile: string | undefined;
  readonly fields: readonly string[];

  constructor(code: RenderErrorCode, message: string, context: RenderErrorContext = {}, cause?: unknown) {
    super(`${formatLocation(context)}${message}`, cause === undefined ? undefined : { cause });
    this.code = code;
    this.file = context.file;
    this.documentIndex = context.documentIndex;
    this.itemIndex = context.itemIndex;
    this.otherFile = context.otherFile;
    this.fields = context.fields ?? [];
  }
}

function formatLocation(context: RenderErrorContext): string {
  if (context.file === undefined) return '';
  let location = context.file;
  if (context.documentIndex !== undefined) location += ` (document ${context.documentIndex}`;
  if (context.itemIndex !== undefined) location += `, item ${context.itemIndex}`;
  if (context.documentIndex !== undefined) location += ')';
  return `${location}: `;
}
