export declare const serviceNames: string[];
export declare function ensureCa(dir: string, opts?: { cn?: string }): boolean;
export declare function ensureCert(dir: string, name: string, opts?: { hosts?: string[]; days?: number; force?: boolean }): boolean;
export interface DevPki { dir: string; ca: string; cert(name: string): string; key(name: string): string }
export declare function ensureDevPki(dir: string, opts?: { names?: string[]; hosts?: string[] }): DevPki;
export declare function ensureJwtKeys(dir: string): { privateKeyFile: string; jwksFile: string; kid: string };
