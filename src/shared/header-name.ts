/**
 * How header names are compared everywhere in keygate: case-insensitively, with "_" read as
 * "-", the way lenient servers do (CGI-style frameworks map both `X-Foo` and `X_Foo` to
 * `HTTP_X_FOO`), so a client's `X_Keygate_Role` is treated as the `X-Keygate-Role` it may become.
 */
export function canonicalHeaderName(name: string): string {
  return name.toLowerCase().replaceAll('_', '-');
}
