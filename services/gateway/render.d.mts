export declare const gatewayDir: string;
export declare const publicRpcs: string[];
export interface ErrorRow { status: number; http: number; code: string; grpc: number; message: string }
export declare const errorTable: ErrorRow[];
export interface RestAlias { method: "GET" | "POST"; path: string; rpc: string; pathParams?: Record<string, string> }
export declare const aliasesFile: string;
export declare function loadAliases(): RestAlias[];
export declare function generateErrors(): string;
export declare function generateAliases(aliases?: RestAlias[]): string;
export declare function generatedFiles(): Record<string, string>;
export declare const templateDefaults: Record<string, string>;
export declare function renderTemplate(text: string, vars: Record<string, string | undefined>): string;
export declare function renderGateway(opts: { dir: string; vars: Record<string, string | undefined> }): string;
