/** Placeholder entry point of the metrics function; replaced by the real handler. */
export const handler = async (): Promise<void> => {};
