import type { BuildOptions } from "esbuild";
export declare function bundleOptions(root?: string): BuildOptions;
export declare function buildBundle(root?: string, outDir?: string, options?: { pgliteTemplate?: boolean }): Promise<string>;
