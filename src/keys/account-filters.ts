// TEMPORARY: replaced by slice FILTER-MGMT at merge (it owns this file: the type, validation).
import type { FilterKind } from '../policy/filter-kinds.js';

/** Kubecost filter language v2 expressions per kind; absent/empty object = not filtered. */
export type AccountFilters = { readonly [K in FilterKind]?: string };
