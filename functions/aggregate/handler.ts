/** Placeholder entry point of the aggregate function; replaced by the real handler. */
export const handler = async (): Promise<void> => {};
