/**
 * A strict reader of the Prometheus text exposition format (version 0.0.4): every line must be
 * a HELP or TYPE comment or a sample; anything else throws. Returns samples keyed by
 * `name{label="value",…}` with labels sorted.
 */
export function parsePrometheusText(text: string): Map<string, number> {
  const samples = new Map<string, number>();
  const types = new Map<string, string>();
  const NAME = '[a-zA-Z_:][a-zA-Z0-9_:]*';
  const sampleLine = new RegExp(
    `^(${NAME})(\\{(.*)\\})? (-?[0-9.e+-]+|NaN|\\+Inf|-Inf)( -?\\d+)?$`,
  );
  const labelPair = /^([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\\\]|\\\\["\\\\n])*)"(,|$)/;
  text.split('\n').forEach((line, index) => {
    if (line === '') return;
    if (line.startsWith('# HELP ')) {
      if (!new RegExp(`^# HELP ${NAME} .*$`).test(line))
        throw new Error(`line ${index + 1}: bad HELP: ${line}`);
      return;
    }
    if (line.startsWith('# TYPE ')) {
      const match = new RegExp(`^# TYPE (${NAME}) (counter|gauge|histogram|summary|untyped)$`).exec(
        line,
      );
      if (!match) throw new Error(`line ${index + 1}: bad TYPE: ${line}`);
      types.set(match[1] as string, match[2] as string);
      return;
    }
    if (line.startsWith('#')) return;
    const match = sampleLine.exec(line);
    if (!match) throw new Error(`line ${index + 1}: not a sample: ${line}`);
    const labels: string[] = [];
    let rest = match[3] ?? '';
    while (rest !== '') {
      const pair = labelPair.exec(rest);
      if (!pair) throw new Error(`line ${index + 1}: bad labels: ${line}`);
      labels.push(`${pair[1]}="${pair[2]}"`);
      rest = rest.slice(pair[0].length);
    }
    const key =
      labels.length > 0 ? `${match[1]}{${labels.sort().join(',')}}` : (match[1] as string);
    if (samples.has(key)) throw new Error(`line ${index + 1}: duplicate sample ${key}`);
    samples.set(key, Number(match[4]));
  });
  if (types.size === 0) throw new Error('no TYPE lines: not Prometheus text');
  return samples;
}

/** `name{a="1",b="2"}` with the labels sorted, to look samples up. */
export function series(name: string, labels: Record<string, string> = {}): string {
  const pairs = Object.entries(labels)
    .map(([k, v]) => `${k}="${v}"`)
    .sort();
  return pairs.length > 0 ? `${name}{${pairs.join(',')}}` : name;
}
