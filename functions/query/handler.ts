/** Placeholder entry point of the query function; replaced by the real handler. */
export const handler = async (): Promise<void> => {};
