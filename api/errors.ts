// Errors found while loading the bootstrap config, each tied to a place in the file so a person
// can go straight to it: "file:line:column: path: message".

/** Stable error codes (matched by tests, docs and tooling: do not rename). */
export const ConfigErrorCode = {
  /** The file could not be read (line 0, column 0). */
  READ: 'WEFT_ERR_CONFIG_READ',
  /** The text is not valid YAML (or has duplicate keys, undefined aliases, more than one document). */
  SYNTAX: 'WEFT_ERR_CONFIG_SYNTAX',
  /** The YAML does not match the config schema (unknown field, wrong type, out of range, ...). */
  SCHEMA: 'WEFT_ERR_CONFIG_SCHEMA',
  /** A reference to a cluster or route table that is not defined. */
  REF: 'WEFT_ERR_CONFIG_REF',
  /** Any other semantic error (duplicates, conflicting fields, bad regex, ...). */
  INVALID: 'WEFT_ERR_CONFIG_INVALID',
} as const

export type ConfigErrorCode = (typeof ConfigErrorCode)[keyof typeof ConfigErrorCode]

export interface ConfigError {
  /** One of ConfigErrorCode (WEFT_ERR_CONFIG_*). */
  code: ConfigErrorCode
  /** The file name as given to the loader. */
  file: string
  /** 1-based; 0 when the error is not tied to a place (WEFT_ERR_CONFIG_READ). */
  line: number
  /** 1-based; 0 when the error is not tied to a place. */
  column: number
  /** Field path such as listeners[0].port; "" for the whole document or a syntax error. */
  path: string
  /** What is wrong, for a person (one line). */
  message: string
}

/** One line: "file:line:column: path: message" (the "path: " part is left out when path is empty). */
export function formatConfigError(e: ConfigError): string {
  const where = `${e.file}:${e.line}:${e.column}`
  const message = e.message.replace(/\s*[\r\n]+\s*/g, ' ')
  return e.path ? `${where}: ${e.path}: ${message}` : `${where}: ${message}`
}

/** Field path from its segments: ["listeners", 0, "port"] -> listeners[0].port; odd keys are quoted: add["x canary"]. */
export function formatPath(segments: ReadonlyArray<string | number>): string {
  let out = ''
  for (const s of segments) {
    if (typeof s === 'number') out += `[${s}]`
    else if (/^[A-Za-z_$][A-Za-z0-9_$-]*$/.test(s)) out += out ? `.${s}` : s
    else out += `[${JSON.stringify(s)}]`
  }
  return out
}
