/**
 * A URL as it may be printed: any userinfo is masked (`http://user:***@host`, or `***@host`
 * when there is only a user part, which is often a token). Unparseable input is not echoed.
 */
export function redactUrl(raw: string): string {
  if (!URL.canParse(raw)) return '(unparseable URL)';
  const url = new URL(raw);
  if (url.password !== '') url.password = '***';
  else if (url.username !== '') url.username = '***';
  return url.toString();
}
