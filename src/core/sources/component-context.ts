import type { SourceContext } from './types.js';

/** The context one component's source is fetched with: its progress events name the component. */
export function componentContext(ctx: SourceContext, component: string): SourceContext {
  const { onProgress } = ctx;
  if (onProgress === undefined) return ctx;
  return { ...ctx, onProgress: (event) => onProgress({ ...event, component }) };
}
