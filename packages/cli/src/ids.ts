const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/** `text` as the server's id (lower case) when it is a UUID, in any case; else undefined. */
export const uuidOf = (text: string): string | undefined => (UUID.test(text) ? text.toLowerCase() : undefined);
