/**
 * Import rules of the repository (docs/architecture.md, "Layout"), checked by `npm run lint`:
 *
 *   npx depcruise --config .dependency-cruiser.cjs packages services test bench scripts charts/test
 *
 * - packages never import services (nor the tools in scripts/, test/, bench/); @crm/contracts
 *   imports only @crm/gen of the workspace, @crm/fastpath nothing of it (its tests: @crm/gen);
 * - no import circle anywhere;
 * - services import each other only through @crm/contracts and the generated clients (@crm/gen),
 *   with three exceptions by design: dbservice mounts each domain's store
 *   (services/<domain>/store); a store uses dbservice's one transaction helper (src/db.ts) and its
 *   own domain's pure rules (src/rules.ts); the entry point (services/all) starts every service
 *   through its entry points only: build (its one build(deps)), config and main;
 * - test code may reach across services (integration tests start the whole app), but nothing
 *   that ships imports a test file.
 * Type-only imports count too (`import type` is still coupling): tsPreCompilationDeps.
 */

/** Test code: *.test.ts anywhere, test/ folders, the testkit, and the repo-level test/, bench/, charts/test/. */
const TEST = "(\\.test\\.ts$|^(services|packages)/[^/]+/test/|^packages/testkit/|^test/|^bench/|^charts/test/)";

module.exports = {
  forbidden: [
    {
      name: "no-circular",
      severity: "error",
      comment: "An import circle: modules that cannot be understood, loaded or tested one without the other.",
      from: {},
      to: { circular: true },
    },
    {
      name: "packages-not-to-services",
      severity: "error",
      comment: "Shared code reaches up: a package imports a service. Move what both need into a package (a cross-service name or format: packages/contracts).",
      from: { path: "^packages/" },
      to: { path: "^services/" },
    },
    {
      name: "contracts-stand-alone",
      severity: "error",
      comment: "@crm/contracts holds names and formats only: of the workspace it may import @crm/gen (generated messages), nothing else.",
      from: { path: "^packages/contracts/" },
      to: { path: "^(packages|services|web)/", pathNot: "^packages/(contracts|gen)/" },
    },
    {
      name: "fastpath-stand-alone",
      severity: "error",
      comment: "@crm/fastpath (the RPC fast path) imports nothing of the workspace: @crm/kit imports it and passes in what it needs (interceptors, limits, error hooks). Its tests may use generated messages (@crm/gen).",
      from: { path: "^packages/fastpath/", pathNot: TEST },
      to: { path: "^(packages|services|web)/", pathNot: "^packages/fastpath/" },
    },
    {
      name: "shipped-code-not-to-tools",
      severity: "error",
      comment: "Code that ships imports the repository's tools or test folders (scripts/, test/, bench/).",
      from: { path: "^(packages|services)/", pathNot: TEST },
      to: { path: "^(scripts|test|bench)/" },
    },
    {
      name: "nothing-ships-test-code",
      severity: "error",
      comment: "Code that ships imports a test file or test helper.",
      from: { path: "^(packages|services)/", pathNot: TEST },
      to: { path: TEST },
    },
    {
      name: "services-meet-through-contracts",
      severity: "error",
      comment:
        "A service imports another service's source. Services meet only through @crm/contracts (names, formats) and @crm/gen (generated clients); " +
        "exceptions: dbservice mounts services/<domain>/store, a store uses services/dbservice/src/db.ts, services/all starts every service's build/config/main.",
      from: { path: "^services/([^/]+)/", pathNot: [TEST, "^services/all/src/"] },
      to: {
        path: "^services/",
        pathNot: [
          "^services/$1/",
          // dbservice mounts the domains' stores (and runs their migrations)
          "^services/[^/]+/store/",
          // a store runs in dbservice's one transaction helper
          "^services/dbservice/src/db\\.ts$",
        ],
      },
    },
    {
      name: "dbservice-mounts-only-stores",
      severity: "error",
      comment: "Only dbservice mounts a domain's store; other services reach a store through its generated client (@crm/gen crm.db.v1).",
      from: { path: "^services/([^/]+)/", pathNot: [TEST, "^services/dbservice/"] },
      to: { path: "^services/[^/]+/store/", pathNot: "^services/$1/" },
    },
    {
      name: "stores-use-only-db",
      severity: "error",
      comment: "Of dbservice, a store imports only src/db.ts (the pool and the one transaction helper).",
      from: { path: "^services/[^/]+/store/", pathNot: TEST },
      to: { path: "^services/dbservice/", pathNot: "^services/dbservice/src/db\\.ts$" },
    },
    {
      name: "stores-use-only-domain-rules",
      severity: "error",
      comment: "Of its own domain's src/, a store imports only rules.ts (the pure rules the service's validation shares); handlers and wiring stay out of the store.",
      from: { path: "^services/([^/]+)/store/", pathNot: TEST },
      to: { path: "^services/$1/src/", pathNot: "^services/$1/src/rules\\.ts$" },
    },
    {
      name: "entry-point-internals",
      severity: "error",
      comment:
        "services/all reaches into a service's internals. It starts every service through that service's entry points only: " +
        "src/build.ts (its one build(deps), which main.ts calls too), src/config.ts (its settings) and src/main.ts (its own process, a target); " +
        "and dbservice's src/embedded.ts, the embedded PostgreSQL only the all-in-one starts (first, before the services' code loads).",
      from: { path: "^services/all/src/" },
      to: { path: "^services/", pathNot: ["^services/all/", "^services/[^/]+/src/(build|config|main)\\.ts$", "^services/dbservice/src/embedded\\.ts$"] },
    },
  ],
  options: {
    // typescript 7 has no JavaScript compiler API for dependency-cruiser to use: swc parses instead.
    parser: "swc",
    tsPreCompilationDeps: true,
    doNotFollow: { path: "node_modules" },
    exclude: { path: "(^|/)(node_modules|dist|data)/" },
    moduleSystems: ["es6", "cjs"],
    tsConfig: { fileName: "tsconfig.json" },
    enhancedResolveOptions: {
      exportsFields: ["exports"],
      // the workspaces' "exports" point at their TypeScript sources
      conditionNames: ["source", "import", "require", "node", "default"],
      extensions: [".ts", ".d.mts", ".mts", ".mjs", ".js", ".json"],
      mainFields: ["module", "main", "types"],
    },
    reporterOptions: { text: { highlightFocused: true } },
  },
};
