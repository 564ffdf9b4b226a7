/** The one shape check of the ids every service passes around (users, companies, chats, timers, …). */
const uuid = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

/** A lowercase canonical UUID, as PostgreSQL prints them and as every id of this system is written. */
export function isUuid(v: string): boolean {
  return uuid.test(v);
}
