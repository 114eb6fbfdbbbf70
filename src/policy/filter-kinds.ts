/**
 * The kinds of data a Kubecost filter applies to (DESIGN §16): a route rule names the one it
 * serves (`filter: allocation`), an account carries one filter expression per kind.
 */
export const FILTER_KINDS = ['allocation', 'assets', 'cloudCost'] as const;

export type FilterKind = (typeof FILTER_KINDS)[number];
