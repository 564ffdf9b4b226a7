/**
 * Request ids for the records' creates (`requestId`, AIP-155): a create form keeps one id for all
 * its submits, so a submit sent again after a lost answer gets the record the first one made
 * instead of a second record; after a create went through, the form takes a new id.
 * crypto.randomUUID exists only in secure contexts (https, localhost); the console may be opened
 * over plain http on a LAN address, so the id is made from getRandomValues (everywhere).
 */
export function newRequestId(): string {
  const b = crypto.getRandomValues(new Uint8Array(16));
  b[6] = (b[6]! & 0x0f) | 0x40; // version 4
  b[8] = (b[8]! & 0x3f) | 0x80; // RFC 4122 variant
  const h = Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
}
