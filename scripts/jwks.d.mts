export interface Jwk { kty: "RSA"; n: string; e: string; kid: string; use: "sig"; alg: "RS256" }
export declare function jwksOf(pems: string[]): { keys: Jwk[] };
