import { loadConfigWithText, resolveConfigPath } from '../config/load.js';

/** `keygate serve`: loads the config and hands over to the server until a signal ends it. */
export async function serveCommand(configFile: string | undefined): Promise<number> {
  const { config, text } = loadConfigWithText({ file: configFile });
  // Loaded only here: the management commands never load the server (app, pipeline, undici,
  // prom-client); they share only the key runtime with it.
  const { serve } = await import('../serve.js');
  await serve(config, resolveConfigPath({ file: configFile }), text);
  return -1; // keeps running until a signal; serve exits the process itself
}
